"""No asyncio in the application: ``Connection.start_in_thread()`` and blocking calls.

For scripts and frameworks that are not asyncio programs. The connection runs on a private
event loop in a daemon thread; the application calls ``publish()`` from its own thread and
blocks on the outcome with ``.run()`` (Rx's blocking subscribe), waits for a state with a
``threading.Event``, and receives messages in a callback (called on the connection's thread:
hand work over with a ``queue.Queue``, as here). ``stop()`` closes the connection and ends the
thread.

    python -m examples.thread_only --run-for 5
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import sys
import threading
import time

from rxmqtt import Connection, ConnectionSettings, ConnectionState, Message, MqttError
from rxmqtt.testing import MosquittoBroker


def wait_until_connected(conn: Connection, timeout: float) -> None:
    """Block this thread until the connection is CONNECTED; TimeoutError after ``timeout``."""
    reached = threading.Event()

    def on_state(state: ConnectionState) -> None:
        if state is ConnectionState.CONNECTED:
            reached.set()

    subscription = conn.connection_state.subscribe(on_state)
    try:
        if not reached.wait(timeout):
            raise TimeoutError(f"not connected within {timeout}s (state {conn.state.name})")
    finally:
        subscription.dispose()


def main(argv: list[str] | None = None) -> int:
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

        conn = Connection(settings)
        inbox: queue.Queue[Message] = queue.Queue()
        with conn.start_in_thread():  # stop() on exit: closes the connection, ends the thread
            conn.messages("plain/#", qos=1).subscribe(inbox.put)
            wait_until_connected(conn, timeout=10.0)
            print("state     CONNECTED", flush=True)

            deadline = time.monotonic() + args.run_for
            n = 0
            while time.monotonic() < deadline:
                n += 1
                try:
                    result = conn.publish("plain/counter", str(n), qos=1).run()  # blocks
                except MqttError as error:
                    print(f"failed    #{n}: {error}", flush=True)
                else:
                    print(f"published #{n}: acknowledged ({result.reason})", flush=True)
                time.sleep(0.5)  # the application's own pace (its thread, its business)
                with contextlib.suppress(queue.Empty):
                    while True:
                        message = inbox.get_nowait()
                        print(f"received  {message.topic} = {message.payload.decode()}")
        print(f"state     {conn.state.name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
