"""Plain asyncio: connect from a URL, await a subscription, read it with ``async for``.

The smallest complete rxmqtt program for an asyncio application, shaped like an aiomqtt one:
``async with Connection(url)`` starts and closes the connection, ``await conn.subscribe(...)``
returns the QoS the broker granted, ``async for`` reads ``messages()`` (leaving the loop
unsubscribes), and ``await conn.publish(...)`` gives the broker's reason code. One Rx line
prints every connection state.

    python -m examples.asyncio_only --run-for 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys

from rxmqtt import Connection, MqttError
from rxmqtt.testing import MosquittoBroker


async def publish_every(conn: Connection, seconds: float, run_for: float) -> int:
    """Publish a numbered message every ``seconds`` for ``run_for``; returns how many."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + run_for
    for n in itertools.count(1):
        try:
            result = await conn.publish("hello/world", f"message {n}", qos=1)
        except MqttError as error:  # dropped by a policy, refused, or closed
            print(f"failed    #{n}: {error}", flush=True)
        else:
            print(f"published #{n}: acknowledged ({result.reason})", flush=True)
        if loop.time() + seconds > deadline:
            return n
        await asyncio.sleep(seconds)
    raise AssertionError("unreachable")


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--broker", help="broker URL (default: an embedded local Mosquitto)")
    parser.add_argument("--run-for", type=float, default=5.0, help="seconds (default 5)")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        url = args.broker or stack.enter_context(MosquittoBroker()).url
        # No client_id in the URL: a random one, with a clean session that ends with us.
        async with Connection(url) as conn:
            conn.connection_state.subscribe(lambda s: print(f"state     {s.name}", flush=True))
            granted = await conn.subscribe("hello/#", qos=1)
            print(f"subscribed hello/# (granted QoS {granted})", flush=True)
            sent = await publish_every(conn, 0.5, args.run_for)
            received = 0
            async for message in conn.messages("hello/#", qos=1):
                print(f"received  {message.topic} = {message.payload.decode()}", flush=True)
                received += 1
                if received == sent:
                    break  # leaving the loop is all it takes to stop reading
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
