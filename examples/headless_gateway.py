"""A headless gateway: the ``mpu_headless`` preset with a persistent SQLite offline queue.

Sensor readings are published with QoS 1 every 100 ms. When the WAN goes away they wait in the
queue, which lives in an SQLite file: if the process stops (or crashes) while offline, the next
run finds them there and sends them, in order, once the broker is reachable. Nothing is lost
silently: every publish ends acknowledged, dropped (reported) or kept in the file.

Locally it runs against an embedded Mosquitto behind a FaultProxy and cuts the "WAN" for a few
seconds. Run it twice with the same ``--queue-path`` and a short ``--run-for`` to see messages
queued by one run delivered by the next.

    python -m examples.headless_gateway --run-for 15 --queue-path /tmp/gateway-queue.db
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import sys
import tempfile
from pathlib import Path

from rxmqtt import (
    Connection,
    ConnectionSettings,
    ConnectionState,
    DroppedMessage,
    DropReason,
    MessageDroppedError,
    QueueStats,
)
from rxmqtt.presets import mpu_headless
from rxmqtt.queue import SqliteStore
from rxmqtt.testing import FaultProxy, MosquittoBroker


def say(what: str, text: object) -> None:
    print(f"{what:>10} | {text}", flush=True)


class Tally:
    """How every publish of this run ended."""

    def __init__(self) -> None:
        self.published = 0
        self.acknowledged = 0
        self.failed: dict[str, int] = {}

    def track(self, conn: Connection, reading: dict[str, float | int]) -> None:
        self.published += 1
        outcome = conn.publish("gateway/gw-1/temperature", json.dumps(reading), qos=1)
        outcome.subscribe(on_next=lambda _: self._acked(), on_error=self._failed)

    def _acked(self) -> None:
        self.acknowledged += 1

    def _failed(self, error: Exception) -> None:
        # "closed": still queued when the process stopped -- kept in the SQLite file
        kind = error.reason if isinstance(error, MessageDroppedError) else type(error).__name__
        self.failed[kind] = self.failed.get(kind, 0) + 1


async def sensor_loop(conn: Connection, tally: Tally) -> None:
    for n in itertools.count(1):
        reading = {"n": n, "celsius": round(20 + 5 * math.sin(n / 10), 2)}
        tally.track(conn, reading)
        await asyncio.sleep(0.1)


async def wan_outage(proxy: FaultProxy, conn: Connection, seconds: float) -> None:
    await conn.wait_for(ConnectionState.CONNECTED, 10)
    await asyncio.sleep(1.0)
    say("demo", f">>> the WAN goes down for {seconds:g}s")
    await asyncio.to_thread(proxy.refuse)
    await asyncio.to_thread(proxy.reset)
    await asyncio.sleep(seconds)
    say("demo", ">>> the WAN is back (the preset's patient backoff decides when we notice)")
    await asyncio.to_thread(proxy.accept)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--broker", help="broker URL (default: an embedded local Mosquitto)")
    parser.add_argument("--run-for", type=float, default=15.0, help="seconds (default 15)")
    parser.add_argument("--queue-path", type=Path, help="SQLite file (default: a temp file)")
    parser.add_argument("--outage", type=float, default=3.0, help="seconds of WAN outage")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        proxy: FaultProxy | None = None
        if args.broker:
            settings = ConnectionSettings.from_url(args.broker, client_id="gw-1")
        else:
            broker = stack.enter_context(MosquittoBroker())
            proxy = stack.enter_context(FaultProxy(broker.host, broker.port))
            say("demo", f"embedded Mosquitto on {broker.url}, the 'WAN' is {proxy.url}")
            settings = ConnectionSettings(host=proxy.host, port=proxy.port, client_id="gw-1")
        queue_path = args.queue_path
        if queue_path is None:
            queue_path = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "queue.db"

        conn = mpu_headless().with_store(SqliteStore(queue_path)).connect(settings)
        latest: list[QueueStats] = []
        conn.queue_stats.subscribe(latest.append)
        say("queue", f"{latest[-1].depth} messages from a previous run waiting in {queue_path}")
        conn.lifecycle.subscribe(lambda e: say("lifecycle", e))
        conn.dropped.subscribe(report_drop)

        tally = Tally()
        async with conn:
            tasks = [asyncio.create_task(sensor_loop(conn, tally))]
            if proxy is not None:
                tasks.append(asyncio.create_task(wan_outage(proxy, conn, args.outage)))
            tasks.append(asyncio.create_task(report(latest)))
            await asyncio.sleep(args.run_for)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            depth = latest[-1].depth + latest[-1].in_flight
        failed = ", ".join(f"{n} {kind}" for kind, n in tally.failed.items()) or "none"
        say(
            "summary",
            f"published {tally.published}, acknowledged {tally.acknowledged}, "
            f"unacknowledged by reason: {failed}",
        )
        say("summary", f"{depth} still queued at close are kept in {queue_path} for the next run")
    return 0


def report_drop(dropped: DroppedMessage) -> None:
    # CLOSED: still queued at shutdown, so kept in the SQLite file for the next run
    if dropped.reason is not DropReason.CLOSED:
        say("dropped", f"{dropped.message.topic}: {dropped.reason.value}")


async def report(latest: list[QueueStats]) -> None:
    while True:
        await asyncio.sleep(1.0)
        stats = latest[-1]
        say("queue", f"depth {stats.depth} ({stats.bytes} B), in flight {stats.in_flight}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
