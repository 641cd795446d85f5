"""Print a connection's streams live while the broker is stopped, crashed and restarted.

Runs against an embedded local Mosquitto (started on a free loopback port) unless ``--broker
URL`` is given. The scripted faults show every stream reacting: ``connection_state``,
``disconnects`` with their source and reason code, ``lifecycle`` with the backoff waits,
queued publishes draining after the reconnect, and a ``messages()`` stream that never breaks.

    python -m examples.live_streams --run-for 12
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys

from rxmqtt import (
    Backoff,
    Connection,
    ConnectionSettings,
    ConnectionState,
    Jitter,
    QueuePolicy,
    ReconnectPolicy,
)
from rxmqtt.testing import BrokerConfig, MosquittoBroker


def say(stream: str, value: object) -> None:
    print(f"{stream:>16} | {value}", flush=True)


async def publish_forever(conn: Connection, interval: float) -> None:
    for n in itertools.count(1):
        outcome = conn.publish("demo/counter", str(n).encode(), qos=1)
        outcome.subscribe(
            on_next=lambda r, n=n: say("publish", f"#{n} acknowledged ({r.reason})"),
            on_error=lambda e, n=n: say("publish", f"#{n} failed: {e}"),
        )
        await asyncio.sleep(interval)


async def scripted_faults(broker: MosquittoBroker, conn: Connection) -> None:
    await conn.wait_for(ConnectionState.CONNECTED, timeout=10)
    await asyncio.sleep(2)
    say("demo", ">>> stopping the broker gracefully (SIGTERM)")
    broker.stop()
    await asyncio.sleep(2)
    say("demo", ">>> starting it again")
    broker.start()
    await conn.wait_for(ConnectionState.CONNECTED, timeout=10)
    await asyncio.sleep(2)
    say("demo", ">>> crashing the broker (SIGKILL)")
    broker.kill()
    await asyncio.sleep(2)
    say("demo", ">>> restarting it")
    broker.start()


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", help="broker URL (default: an embedded local Mosquitto)")
    parser.add_argument("--run-for", type=float, default=15.0, help="seconds to run (default 15)")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        broker: MosquittoBroker | None = None
        if args.broker:
            settings = ConnectionSettings.from_url(args.broker)
        else:
            broker = stack.enter_context(MosquittoBroker(BrokerConfig(persistence=True)))
            if not broker.is_running:
                broker.start()
            say("demo", f"embedded Mosquitto on {broker.url}")
            settings = ConnectionSettings(host=broker.host, port=broker.port, keep_alive=5)

        conn = Connection(
            settings,
            reconnect=ReconnectPolicy(backoff=Backoff(0.2, 2.0, jitter=Jitter.FULL)),
            queue=QueuePolicy(max_messages=1_000),
        )
        conn.connection_state.subscribe(lambda s: say("connection_state", s.name))
        conn.disconnects.subscribe(lambda d: say("disconnects", d))
        conn.lifecycle.subscribe(lambda e: say("lifecycle", e))
        conn.queue_stats.subscribe(
            lambda q: say("queue_stats", f"depth={q.depth} in_flight={q.in_flight}")
        )
        conn.messages("demo/#", qos=1).subscribe(
            lambda m: say("messages", f"{m.topic} = {m.payload.decode()}")
        )
        async with conn:
            tasks = [asyncio.create_task(publish_forever(conn, 0.5))]
            if broker is not None:
                tasks.append(asyncio.create_task(scripted_faults(broker, conn)))
            await asyncio.sleep(args.run_for)
            for task in tasks:
                task.cancel()
        say("demo", f"done; final state {conn.state.name}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
