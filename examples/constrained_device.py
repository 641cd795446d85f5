"""A constrained device loop: the ``mcu_headless`` preset and its strict byte budget.

Every 50 ms the device samples a sensor and publishes the value with QoS 0 (telemetry: dropped
while offline, it promised nothing); every fifth sample it publishes a 1200-byte snapshot with
QoS 1 (an event: queued while offline, within the byte budget, oldest dropped first). The loop
never waits for the network. At the end it prints the peak queue size against the budget and
every drop by reason.

Locally it runs against an embedded Mosquitto behind a FaultProxy and takes the radio link down
for a few seconds.

    python -m examples.constrained_device --run-for 12
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import struct
import sys
from collections import Counter

from rxmqtt import Connection, ConnectionSettings, ConnectionState, DroppedMessage, QueueStats
from rxmqtt.presets import mcu_headless
from rxmqtt.testing import FaultProxy, MosquittoBroker


def say(what: str, text: object) -> None:
    print(f"{what:>10} | {text}", flush=True)


class Budget:
    """Watches the queue against the preset's budget."""

    def __init__(self, max_bytes: int, max_messages: int) -> None:
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        self.peak_bytes = 0
        self.peak_depth = 0
        self.drops: Counter[str] = Counter()

    def on_stats(self, stats: QueueStats) -> None:
        self.peak_bytes = max(self.peak_bytes, stats.bytes)
        self.peak_depth = max(self.peak_depth, stats.depth)

    def on_drop(self, dropped: DroppedMessage) -> None:
        self.drops[dropped.reason.value] += 1


async def device_loop(conn: Connection) -> None:
    for n in itertools.count():
        value = 21.5 + math.sin(n / 20)
        conn.publish("device/d-7/temp", struct.pack("!If", n, value), qos=0)
        if n % 5 == 0:
            snapshot = struct.pack("!I", n) + bytes(1196)  # a 1200-byte waveform snapshot
            conn.publish("device/d-7/snapshot", snapshot, qos=1)
        await asyncio.sleep(0.05)


async def radio_outage(proxy: FaultProxy, conn: Connection, seconds: float) -> None:
    await conn.wait_for(ConnectionState.CONNECTED, 10)
    await asyncio.sleep(0.5)
    say("demo", f">>> radio link down for {seconds:g}s")
    await asyncio.to_thread(proxy.refuse)
    await asyncio.to_thread(proxy.reset)
    await asyncio.sleep(seconds)
    say("demo", ">>> radio link back")
    await asyncio.to_thread(proxy.accept)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--broker", help="broker URL (default: an embedded local Mosquitto)")
    parser.add_argument("--run-for", type=float, default=12.0, help="seconds (default 12)")
    parser.add_argument("--outage", type=float, default=4.0, help="seconds without the link")
    args = parser.parse_args(argv)

    preset = mcu_headless()
    max_bytes, max_messages = preset.queue.max_bytes, preset.queue.max_messages
    assert max_bytes is not None
    assert max_messages is not None
    with contextlib.ExitStack() as stack:
        proxy: FaultProxy | None = None
        if args.broker:
            settings = ConnectionSettings.from_url(args.broker, client_id="d-7")
        else:
            broker = stack.enter_context(MosquittoBroker())
            proxy = stack.enter_context(FaultProxy(broker.host, broker.port))
            say("demo", f"embedded Mosquitto on {broker.url}, the radio link is {proxy.url}")
            settings = ConnectionSettings(host=proxy.host, port=proxy.port, client_id="d-7")

        conn = preset.connect(settings)
        budget = Budget(max_bytes, max_messages)
        conn.queue_stats.subscribe(budget.on_stats)
        conn.dropped.subscribe(budget.on_drop)
        conn.disconnects.subscribe(lambda d: say("disconnect", d))
        conn.connection_state.subscribe(lambda s: say("state", s.name))
        async with conn:
            tasks = [asyncio.create_task(device_loop(conn))]
            if proxy is not None:
                tasks.append(asyncio.create_task(radio_outage(proxy, conn, args.outage)))
            await asyncio.sleep(args.run_for)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            budget.drops.pop("closed", None)  # what is still queued at the end of the demo
        say(
            "budget",
            f"peak queue {budget.peak_bytes} B of {max_bytes} B, "
            f"{budget.peak_depth} of {max_messages} messages",
        )
        say("budget", f"dropped by reason: {dict(budget.drops) or 'none'}")
        if budget.peak_bytes > max_bytes or budget.peak_depth > max_messages:
            say("budget", "EXCEEDED")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
