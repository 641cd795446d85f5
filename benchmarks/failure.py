"""Failure detection: a black-holed network, and a broker that restarts.

- **Keep-alive**: the client talks to the broker through a :class:`FaultProxy`. Right after a
  QoS 1 round trip (so the last inbound byte is "now"), the proxy black-holes both directions;
  the latency is the time until the client reports the keep-alive failure
  (``Disconnect(source=KEEPALIVE)`` for rxmqtt, ``on_disconnect`` "Keep alive timeout" for raw
  paho with ``loop_start()``), as a multiple of ``keep_alive``. Both use the same keep_alive.
- **Broker restart**: the broker is stopped (SIGTERM), stays down long enough for the client's
  backoff to reach its maximum, and is started again on the same port. The latency is from the
  moment the broker accepts connections again (``MosquittoBroker.start()`` returns; it polls
  every 10 ms) to CONNECTED. rxmqtt's lifecycle says when its next attempt was due, so the
  part of the latency that is not the pending backoff delay is reported too. Raw paho uses the
  same backoff (``reconnect_delay_set``), no jitter.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

from benchmarks._common import bench_broker
from benchmarks.throughput import paho_client, paho_connect_threaded, paho_stop_threaded
from rxmqtt import (
    Backoff,
    Connected,
    ConnectFailed,
    Connecting,
    Connection,
    ConnectionSettings,
    ConnectionState,
    Disconnect,
    Disconnected,
    DisconnectSource,
    Jitter,
    LifecycleEvent,
    ReconnectPolicy,
)
from rxmqtt.testing import FaultProxy, MosquittoBroker

PROBE_TOPIC = "bench/failure/probe"
RESTART_BACKOFF = Backoff(initial=0.25, maximum=1.0, multiplier=2.0, jitter=Jitter.NONE)
DOWN_FOR = 2.0
"""Seconds the broker stays down: long enough for the backoff (0.25, 0.5, 1, 1, ...) to reach
its maximum, so the delay pending when the broker returns is anywhere in [0, 1] s."""


@dataclass(frozen=True, slots=True)
class Restart:
    """One broker-restart sample: seconds from "accepting again" to CONNECTED, and how much of
    that the client was still meant to wait (its pending backoff delay; ``None`` if unknown)."""

    latency: float
    pending: float | None


def _rx_settings(host: str, port: int, name: str, keep_alive: int = 60) -> ConnectionSettings:
    return ConnectionSettings(
        host=host,
        port=port,
        client_id=f"bench-{name}-{time.monotonic_ns()}",
        keep_alive=keep_alive,
        clean_start=True,
        session_expiry=0,
    )


# --------------------------------------------------------------------------- keep-alive


async def _rx_keepalive(proxy: FaultProxy, keep_alive: int) -> float:
    loop = asyncio.get_running_loop()
    detected: asyncio.Future[Disconnect] = loop.create_future()

    def on_disconnect(disconnect: Disconnect) -> None:
        if disconnect.source is DisconnectSource.KEEPALIVE and not detected.done():
            detected.set_result(disconnect)

    # A long backoff: the measurement ends at the detection; no reconnect storm afterwards.
    policy = ReconnectPolicy(backoff=Backoff(initial=30.0, maximum=30.0, jitter=Jitter.NONE))
    conn = Connection(_rx_settings(proxy.host, proxy.port, "rx-ka", keep_alive), reconnect=policy)
    subscription = conn.disconnects.subscribe(on_disconnect)
    try:
        async with conn:
            await conn.wait_for(ConnectionState.CONNECTED, timeout=10)
            await asyncio.wait_for(conn.publish(PROBE_TOPIC, b"x", qos=1), 10)
            start = time.monotonic()
            await asyncio.to_thread(proxy.blackhole)
            disconnect = await asyncio.wait_for(detected, keep_alive * 4 + 10)
            return disconnect.at - start
    finally:
        subscription.dispose()


def rx_keepalive(broker: MosquittoBroker, keep_alive: int) -> float:
    """Seconds from black hole to rxmqtt's ``Disconnect(KEEPALIVE)``."""
    with FaultProxy(broker.host, broker.port) as proxy:
        return asyncio.run(_rx_keepalive(proxy, keep_alive))


def paho_keepalive(broker: MosquittoBroker, keep_alive: int) -> float:
    """Seconds from black hole to raw paho's keep-alive ``on_disconnect`` (``loop_start``)."""
    with FaultProxy(broker.host, broker.port) as proxy:
        client = paho_client("paho-ka")
        client.reconnect_delay_set(30, 30)
        detected = threading.Event()
        found: list[tuple[float, str]] = []

        def on_disconnect(_c: Any, _u: Any, _flags: Any, reason_code: Any, _p: Any) -> None:
            found.append((time.monotonic(), str(reason_code)))
            detected.set()

        published = threading.Event()
        client.on_publish = lambda *_: published.set()
        paho_connect_threaded(client, proxy.host, proxy.port, keep_alive)
        client.on_disconnect = on_disconnect
        try:
            client.publish(PROBE_TOPIC, b"x", qos=1)
            if not published.wait(10):
                raise TimeoutError("paho: no PUBACK for the probe")
            start = time.monotonic()
            proxy.blackhole()
            if not detected.wait(keep_alive * 4 + 10):
                raise TimeoutError("paho: keep-alive failure not reported")
            at, reason = found[0]
            if "keep alive" not in reason.lower():
                raise RuntimeError(f"paho reported {reason!r}, not a keep-alive timeout")
            return at - start
        finally:
            proxy.pass_through()
            paho_stop_threaded(client)


# --------------------------------------------------------------------------- broker restart


async def _rx_restart(broker: MosquittoBroker) -> Restart:
    loop = asyncio.get_running_loop()
    next_attempt: list[float | None] = [None]
    connected_at: list[float] = []

    def on_event(event: LifecycleEvent) -> None:
        now = loop.time()
        if isinstance(event, Disconnected | ConnectFailed) and event.retry_in is not None:
            next_attempt[0] = now + event.retry_in
        elif isinstance(event, Connecting):
            next_attempt[0] = None  # an attempt is under way: nothing pending
        elif isinstance(event, Connected):
            connected_at.append(now)

    conn = Connection(
        _rx_settings(broker.host, broker.port, "rx-restart"),
        reconnect=ReconnectPolicy(backoff=RESTART_BACKOFF, reset_after=60.0),
    )
    subscription = conn.lifecycle.subscribe(on_event)
    try:
        async with conn:
            await conn.wait_for(ConnectionState.CONNECTED, timeout=10)
            await asyncio.to_thread(broker.stop)
            await conn.wait_for(ConnectionState.RECONNECTING, timeout=10)
            await asyncio.sleep(DOWN_FOR)
            await asyncio.to_thread(broker.start)
            accepted = loop.time()
            due = next_attempt[0]
            pending = max(0.0, due - accepted) if due is not None else 0.0
            await conn.wait_for(ConnectionState.CONNECTED, timeout=RESTART_BACKOFF.maximum + 10)
            return Restart(connected_at[-1] - accepted, pending)
    finally:
        subscription.dispose()


def rx_restart() -> Restart:
    """rxmqtt: broker down, then up again; latency to CONNECTED after it accepts."""
    with bench_broker() as broker:
        return asyncio.run(_rx_restart(broker))


def paho_restart() -> Restart:
    """Raw paho ``loop_start`` with the same backoff: latency to ``on_connect`` after accept."""
    with bench_broker() as broker:
        client = paho_client("paho-restart")
        # paho types these as int; it computes with them as seconds, fractions work.
        client.reconnect_delay_set(RESTART_BACKOFF.initial, RESTART_BACKOFF.maximum)
        paho_connect_threaded(client, broker.host, broker.port)
        connected_at: list[float] = []
        reconnected = threading.Event()
        lost = threading.Event()

        def on_connect(*_: Any) -> None:
            connected_at.append(time.monotonic())
            reconnected.set()

        client.on_connect = on_connect
        client.on_disconnect = lambda *_: lost.set()
        try:
            broker.stop()
            if not lost.wait(10):
                raise TimeoutError("paho did not notice the broker stopping")
            time.sleep(DOWN_FOR)
            broker.start()
            accepted = time.monotonic()
            if not reconnected.wait(RESTART_BACKOFF.maximum + 10):
                raise TimeoutError("paho did not reconnect")
            return Restart(connected_at[-1] - accepted, None)
        finally:
            paho_stop_threaded(client)
