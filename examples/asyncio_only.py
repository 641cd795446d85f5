"""Plain asyncio: one connection, a subscription, publishes awaited for their acknowledgement.

The smallest complete rxmqtt program for an asyncio application: ``async with`` starts and
closes the connection, ``wait_for`` awaits a state, ``await conn.publish(...)`` gives the
broker's reason code, and ``messages()`` is an observable you subscribe a callback to.

    python -m examples.asyncio_only --run-for 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys

from rxmqtt import Connection, ConnectionSettings, ConnectionState, Message, MqttError
from rxmqtt.testing import MosquittoBroker


def on_message(message: Message) -> None:
    print(f"received  {message.topic} = {message.payload.decode()}", flush=True)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--broker", help="broker URL (default: an embedded local Mosquitto)")
    parser.add_argument("--run-for", type=float, default=5.0, help="seconds (default 5)")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        if args.broker:
            settings = ConnectionSettings.from_url(args.broker)
        else:
            broker = stack.enter_context(MosquittoBroker())
            settings = ConnectionSettings(host=broker.host, port=broker.port)

        async with Connection(settings) as conn:
            conn.connection_state.subscribe(lambda s: print(f"state     {s.name}", flush=True))
            conn.messages("hello/#", qos=1).subscribe(on_message)
            await conn.wait_for(ConnectionState.CONNECTED, timeout=10)

            loop = asyncio.get_running_loop()
            deadline = loop.time() + args.run_for
            for n in itertools.count(1):
                try:
                    result = await conn.publish("hello/world", f"message {n}", qos=1)
                except MqttError as error:  # dropped by a policy, refused, or closed
                    print(f"failed    #{n}: {error}", flush=True)
                else:
                    print(f"published #{n}: acknowledged ({result.reason})", flush=True)
                if loop.time() + 0.5 > deadline:
                    break
                await asyncio.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
