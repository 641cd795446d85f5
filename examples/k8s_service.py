"""A Kubernetes service: the ``k8s_single_node`` preset, ``/readyz`` + ``/livez`` probes, and a
clean shutdown on SIGTERM.

In a pod the broker comes from the ``AIO_*`` environment (``ConnectionSettings.from_env``) and
the probes listen on ``0.0.0.0:8080`` (see docs/kubernetes.md for the pod spec). Locally it runs
against an embedded Mosquitto, restarts it once (a broker update) and shows, by probing itself
the way the kubelet would, readiness going 503 and back to 200 while liveness stays 200.

The service itself answers requests: a message on ``svc/requests/<id>`` is answered on
``svc/responses/<id>``.

    python -m examples.k8s_service --run-for 10
    AIO_BROKER_HOSTNAME=broker python -m examples.k8s_service --run-for 0 --health-port 8080
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys

from rxmqtt import Connection, ConnectionSettings, ConnectionState, Message
from rxmqtt.health import HealthServer
from rxmqtt.presets import k8s_single_node
from rxmqtt.testing import BrokerConfig, MosquittoBroker


def say(what: str, text: object) -> None:
    print(f"{what:>10} | {text}", flush=True)


async def probe(server: HealthServer, path: str) -> str:
    """GET ``path`` like the kubelet's httpGet probe; returns ``"200 ready: CONNECTED"``."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        response = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = response.decode().partition("\r\n\r\n")
    return f"{head.split(' ', 2)[1]} {body.strip()}"


async def show_probes(server: HealthServer) -> None:
    say("probe", f"/readyz -> {await probe(server, '/readyz')}")
    say("probe", f"/livez -> {await probe(server, '/livez')}")


async def broker_update(broker: MosquittoBroker, conn: Connection, server: HealthServer) -> None:
    """The fault this preset is for: the broker restarts (an update). Show the probes."""
    await conn.wait_for(ConnectionState.CONNECTED, 10)
    await show_probes(server)
    say("demo", ">>> restarting the broker (an update)")
    await asyncio.to_thread(broker.stop)
    await conn.wait_for(ConnectionState.RECONNECTING, 10)
    await show_probes(server)  # not ready (no traffic routed here), but alive (no restart)
    await asyncio.to_thread(broker.start)
    await conn.wait_for(ConnectionState.CONNECTED, 10)
    await show_probes(server)


def answer(conn: Connection, request: Message) -> None:
    request_id = request.topic.rsplit("/", 1)[-1]
    reply = f"handled by {socket.gethostname()}: ".encode() + request.payload
    conn.publish(f"svc/responses/{request_id}", reply, qos=1).subscribe(
        on_error=lambda e: say("error", e)
    )


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--broker", help="broker URL (default: AIO_* env, else embedded)")
    parser.add_argument(
        "--run-for", type=float, default=10.0, help="seconds (default 10; 0: until SIGTERM)"
    )
    parser.add_argument("--health-host", default="127.0.0.1", help="probe address")
    parser.add_argument("--health-port", type=int, default=0, help="probe port (0: any free)")
    args = parser.parse_args(argv)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # the kubelet sends SIGTERM to stop the pod
        loop.add_signal_handler(sig, stop.set)

    with contextlib.ExitStack() as stack:
        broker: MosquittoBroker | None = None
        if args.broker:
            settings = ConnectionSettings.from_url(args.broker)
        elif os.environ.get("AIO_BROKER_HOSTNAME"):
            settings = ConnectionSettings.from_env()
        else:
            broker = stack.enter_context(MosquittoBroker(BrokerConfig(persistence=True)))
            say("demo", f"embedded Mosquitto on {broker.url}")
            # Named after the pod (its host name), so the preset's persistent session (and
            # the subscription) survives the broker update; without a client id the session
            # would be clean and end with the connection.
            name = f"svc-{socket.gethostname()}"
            settings = ConnectionSettings(host=broker.host, port=broker.port, client_id=name)

        conn = k8s_single_node().connect(settings)
        conn.lifecycle.subscribe(lambda e: say("lifecycle", e))
        conn.messages("svc/requests/+", qos=1).subscribe(lambda m: answer(conn, m))
        async with conn, HealthServer(conn, args.health_host, args.health_port) as health:
            say("health", f"probes on {health.url}/readyz and {health.url}/livez")
            demo = None
            if broker is not None:
                demo = asyncio.create_task(broker_update(broker, conn, health))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.run_for or None)
            if demo is not None:
                demo.cancel()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await demo
            say("demo", "shutting down: readiness stops first, then the connection closes")
        say("demo", f"done; final state {conn.state.name}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
