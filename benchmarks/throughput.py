"""End-to-end throughput: one publisher, one subscriber, 64-byte payloads, QoS 0 or 1.

Each client library is used the way its documentation shows, in one process, against the same
Mosquitto on loopback:

- ``rxmqtt``: ``Connection.messages(topic, qos).subscribe(...)`` and eager ``publish()`` (the
  publisher's offline queue is unbounded, like paho's default ``max_queued_messages_set(0)``,
  so a burst larger than the broker's Receive Maximum waits in it instead of being dropped);
- ``paho loop_start``: paho-mqtt 2.x with its own network thread per client, ``on_message``;
- ``paho asyncio``: paho driven by ``add_reader``/``add_writer`` exactly like paho's
  ``examples/loop_asyncio.py`` (one ``loop_read()`` per readiness event, ``loop_misc()`` every
  second) -- the protocol engine alone, without rxmqtt's layers;
- ``aiomqtt``: ``async for message in client.messages`` and ``await client.publish(...)``,
  publishes gathered 100 at a time so acknowledgements overlap as they do for the others;
- ``gmqtt``: ``on_message`` callback, ``publish()``; QoS 1 publishes wait while gmqtt has no
  free packet id (its window is the broker's Receive Maximum).

The rate is messages per second from the first publish to the last receive. Every payload is
distinct and the subscriber keeps them, so "all received, exactly once" is checked, not
assumed. Asyncio publishers yield to the loop every 100 messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks._common import TOPIC, Throughput, client_id, payloads
from rxmqtt import Connection, ConnectionSettings, ConnectionState, Message, QueuePolicy

BATCH = 100
"""Asyncio publishers yield to the loop after this many publishes."""

E2ERunner = Callable[[str, int, list[bytes], int, float], Throughput]
"""(host, port, payloads, qos, timeout) -> Throughput; owns its loop/threads and stops them."""


# --------------------------------------------------------------------------- helpers


class _Sink:
    """Collects payloads and notes the time the last expected one arrived.

    The same tiny callback body is used for every peer, so its cost is identical for all. Built
    on a running loop, :meth:`wait` awaits completion there; otherwise wait on ``complete``.
    """

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.got: list[bytes] = []
        self.end = 0.0
        self.complete = threading.Event()
        self._done: asyncio.Future[None] | None = None
        with contextlib.suppress(RuntimeError):
            self._done = asyncio.get_running_loop().create_future()

    def add(self, payload: bytes) -> None:
        got = self.got
        got.append(payload)
        if len(got) == self.expected:
            self.end = time.perf_counter()
            self.complete.set()
            if self._done is not None and not self._done.done():
                self._done.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Until every expected payload arrived, or ``timeout`` seconds (then it is short)."""
        assert self._done is not None, "_Sink.wait needs a sink built on the running loop"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._done), timeout)

    def result(self, start: float) -> Throughput:
        end = self.end if self.complete.is_set() else time.perf_counter()
        return Throughput(self.expected, len(self.got), len(set(self.got)), end - start)


async def _warm_up(probe: Callable[[], Any], sink: _Sink, timeout: float = 10.0) -> None:
    """Publish probes until one arrives (the subscription is live at the broker), let stragglers
    land, then forget them. Used where the API has no "subscribed" signal."""
    deadline = time.monotonic() + timeout
    while not sink.got:
        if time.monotonic() >= deadline:
            raise TimeoutError("warm-up probe never arrived: subscription not live")
        probe()
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    sink.got.clear()


# --------------------------------------------------------------------------- rxmqtt


def rx_settings(host: str, port: int, prefix: str, **overrides: Any) -> ConnectionSettings:
    """Settings for a benchmark connection: clean session, nothing kept at the broker."""
    return ConnectionSettings(
        host=host,
        port=port,
        client_id=client_id(prefix),
        clean_start=True,
        session_expiry=0,
        **overrides,
    )


UNBOUNDED_QUEUE = QueuePolicy(max_messages=None, max_bytes=None)


async def _rxmqtt(
    host: str, port: int, data: list[bytes], qos: int, timeout: float, *, awaited: bool = False
) -> Throughput:
    sink = _Sink(len(data))
    sub = Connection(rx_settings(host, port, "rx-sub"))
    pub = Connection(rx_settings(host, port, "rx-pub"), queue=UNBOUNDED_QUEUE)
    add = sink.add

    def on_message(message: Message) -> None:
        add(message.payload)

    async with sub, pub:
        await sub.wait_for(ConnectionState.CONNECTED, timeout=10)
        await pub.wait_for(ConnectionState.CONNECTED, timeout=10)
        subscription = sub.messages(TOPIC, qos=qos).subscribe(on_message)
        try:
            await _warm_up(lambda: pub.publish(TOPIC, b"warm-up", qos=qos), sink)
            publish = pub.publish
            start = time.perf_counter()
            if awaited:  # like aiomqtt's run: every outcome awaited, BATCH at a time
                for offset in range(0, len(data), BATCH):
                    await asyncio.gather(
                        *(publish(TOPIC, p, qos) for p in data[offset : offset + BATCH])
                    )
            else:
                for index, payload in enumerate(data, 1):
                    publish(TOPIC, payload, qos)
                    if index % BATCH == 0:
                        await asyncio.sleep(0)
            await sink.wait(timeout)
            return sink.result(start)
        finally:
            subscription.dispose()


def run_rxmqtt(host: str, port: int, data: list[bytes], qos: int, timeout: float) -> Throughput:
    """rxmqtt publisher and subscriber on one asyncio loop."""
    return asyncio.run(_rxmqtt(host, port, data, qos, timeout))


def run_rxmqtt_awaited(
    host: str, port: int, data: list[bytes], qos: int, timeout: float
) -> Throughput:
    """rxmqtt awaiting every publish outcome, gathered ``BATCH`` at a time, as aiomqtt does."""
    return asyncio.run(_rxmqtt(host, port, data, qos, timeout, awaited=True))


# --------------------------------------------------------------------------- raw paho


def paho_client(prefix: str) -> Any:
    """A paho-mqtt 2.x MQTT 5 client with the callback API version 2."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    return paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id(prefix), protocol=paho.MQTTv5
    )


def paho_connect_threaded(client: Any, host: str, port: int, keep_alive: int = 60) -> None:
    """``connect`` + ``loop_start`` and wait for the CONNACK."""
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect(host, port, keepalive=keep_alive)
    client.loop_start()
    if not connected.wait(10):
        paho_stop_threaded(client)  # the caller only stops clients that connected
        raise TimeoutError("paho: no CONNACK within 10 s")


def paho_stop_threaded(client: Any) -> None:
    """``disconnect`` + ``loop_stop`` (joins paho's thread)."""
    try:
        client.disconnect()
    finally:
        client.loop_stop()


def run_paho_thread(
    host: str, port: int, data: list[bytes], qos: int, timeout: float
) -> Throughput:
    """Raw paho with ``loop_start()``: one network thread per client, publishing from main."""
    sink = _Sink(len(data))
    add = sink.add
    sub = paho_client("paho-sub")
    pub = paho_client("paho-pub")
    sub.on_message = lambda _c, _u, msg: add(msg.payload)
    subscribed = threading.Event()
    sub.on_subscribe = lambda *_: subscribed.set()
    started: list[Any] = []
    try:
        for client in (sub, pub):
            paho_connect_threaded(client, host, port)
            started.append(client)
        sub.subscribe(TOPIC, qos)
        if not subscribed.wait(10):
            raise TimeoutError("paho: no SUBACK within 10 s")
        publish = pub.publish
        start = time.perf_counter()
        for payload in data:
            publish(TOPIC, payload, qos)
        sink.complete.wait(timeout)
        return sink.result(start)
    finally:
        for client in started:
            paho_stop_threaded(client)


class AsyncioPaho:
    """paho driven by the asyncio loop, as in paho's ``examples/loop_asyncio.py``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: Any) -> None:
        self.loop = loop
        self.client = client
        self.misc: asyncio.Task[None] | None = None
        self.connected: asyncio.Future[None] = loop.create_future()
        self.disconnected: asyncio.Future[None] = loop.create_future()
        client.on_socket_open = self.on_socket_open
        client.on_socket_close = self.on_socket_close
        client.on_socket_register_write = self.on_socket_register_write
        client.on_socket_unregister_write = self.on_socket_unregister_write
        client.on_connect = lambda *_: _resolve(self.connected)
        client.on_disconnect = lambda *_: _resolve(self.disconnected)

    def on_socket_open(self, client: Any, userdata: Any, sock: Any) -> None:
        self.loop.add_reader(sock, client.loop_read)
        self.misc = self.loop.create_task(self.misc_loop())

    def on_socket_close(self, client: Any, userdata: Any, sock: Any) -> None:
        self.loop.remove_reader(sock)
        if self.misc is not None:
            self.misc.cancel()

    def on_socket_register_write(self, client: Any, userdata: Any, sock: Any) -> None:
        self.loop.add_writer(sock, client.loop_write)

    def on_socket_unregister_write(self, client: Any, userdata: Any, sock: Any) -> None:
        self.loop.remove_writer(sock)

    async def misc_loop(self) -> None:
        import paho.mqtt.client as paho

        while self.client.loop_misc() == paho.MQTT_ERR_SUCCESS:  # noqa: ASYNC110 (as in paho)
            await asyncio.sleep(1)

    async def connect(self, host: str, port: int, keep_alive: int = 60) -> None:
        self.client.connect(host, port, keepalive=keep_alive)
        await asyncio.wait_for(self.connected, 10)

    async def disconnect(self) -> None:
        self.client.disconnect()
        try:
            await asyncio.wait_for(self.disconnected, 5)
        finally:
            if self.misc is not None:
                self.misc.cancel()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _paho_asyncio(
    host: str, port: int, data: list[bytes], qos: int, timeout: float
) -> Throughput:
    loop = asyncio.get_running_loop()
    sink = _Sink(len(data))
    add = sink.add
    sub = AsyncioPaho(loop, paho_client("pahoa-sub"))
    pub = AsyncioPaho(loop, paho_client("pahoa-pub"))
    sub.client.on_message = lambda _c, _u, msg: add(msg.payload)
    subscribed: asyncio.Future[None] = loop.create_future()
    sub.client.on_subscribe = lambda *_: _resolve(subscribed)
    started: list[AsyncioPaho] = []
    try:
        for helper in (sub, pub):
            await helper.connect(host, port)
            started.append(helper)
        sub.client.subscribe(TOPIC, qos)
        await asyncio.wait_for(subscribed, 10)
        publish = pub.client.publish
        start = time.perf_counter()
        for index, payload in enumerate(data, 1):
            publish(TOPIC, payload, qos)
            if index % BATCH == 0:
                await asyncio.sleep(0)
        await sink.wait(timeout)
        return sink.result(start)
    finally:
        for helper in started:
            await helper.disconnect()


def run_paho_asyncio(
    host: str, port: int, data: list[bytes], qos: int, timeout: float
) -> Throughput:
    """Raw paho on asyncio sockets: the protocol engine without rxmqtt's layers."""
    return asyncio.run(_paho_asyncio(host, port, data, qos, timeout))


# --------------------------------------------------------------------------- aiomqtt


async def _aiomqtt(host: str, port: int, data: list[bytes], qos: int, timeout: float) -> Throughput:
    import aiomqtt

    sink = _Sink(len(data))
    add = sink.add
    v5 = aiomqtt.ProtocolVersion.V5
    async with (
        aiomqtt.Client(host, port, identifier=client_id("aio-sub"), protocol=v5) as sub,
        aiomqtt.Client(host, port, identifier=client_id("aio-pub"), protocol=v5) as pub,
    ):
        pub.pending_calls_threshold = BATCH + 1  # else it logs a warning per extra call
        await sub.subscribe(TOPIC, qos)

        async def consume() -> None:
            async for message in sub.messages:
                add(message.payload)
                if sink.complete.is_set():
                    return

        consumer = asyncio.create_task(consume())
        try:
            start = time.perf_counter()
            for offset in range(0, len(data), BATCH):
                await asyncio.gather(
                    *(pub.publish(TOPIC, p, qos) for p in data[offset : offset + BATCH])
                )
            await sink.wait(timeout)
            return sink.result(start)
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)


def run_aiomqtt(host: str, port: int, data: list[bytes], qos: int, timeout: float) -> Throughput:
    """aiomqtt 2.x (paho underneath, its own asyncio integration)."""
    return asyncio.run(_aiomqtt(host, port, data, qos, timeout))


# --------------------------------------------------------------------------- gmqtt


async def _gmqtt(host: str, port: int, data: list[bytes], qos: int, timeout: float) -> Throughput:
    import gmqtt  # type: ignore[import-untyped]
    from gmqtt.mqtt.constants import MQTTv50  # type: ignore[import-untyped]

    loop = asyncio.get_running_loop()
    sink = _Sink(len(data))
    add = sink.add
    sub = gmqtt.Client(client_id("gm-sub"))
    pub = gmqtt.Client(client_id("gm-pub"))

    def on_message(_client: Any, _topic: str, payload: bytes, _qos: int, _props: Any) -> int:
        add(payload)
        return 0

    sub.on_message = on_message
    subscribed: asyncio.Future[None] = loop.create_future()
    sub.on_subscribe = lambda *_: _resolve(subscribed)
    started: list[Any] = []
    try:
        for client in (sub, pub):
            await client.connect(host, port, version=MQTTv50)
            started.append(client)
        sub.subscribe(TOPIC, qos=qos)
        await asyncio.wait_for(subscribed, 10)
        publish = pub.publish
        start = time.perf_counter()
        for index, payload in enumerate(data, 1):
            while True:
                try:
                    publish(TOPIC, payload, qos=qos)
                    break
                except OverflowError:  # every packet id in use: wait for PUBACKs
                    await asyncio.sleep(0)
            if index % BATCH == 0:
                await asyncio.sleep(0)
        await sink.wait(timeout)
        return sink.result(start)
    finally:
        for client in started:
            await client.disconnect()


def run_gmqtt(host: str, port: int, data: list[bytes], qos: int, timeout: float) -> Throughput:
    """gmqtt (its own asyncio protocol and codec, no paho)."""
    return asyncio.run(_gmqtt(host, port, data, qos, timeout))


PEERS: dict[str, tuple[E2ERunner, str | None]] = {
    "paho loop_start": (run_paho_thread, None),
    "paho asyncio": (run_paho_asyncio, None),
    "aiomqtt": (run_aiomqtt, "aiomqtt"),
    "gmqtt": (run_gmqtt, "gmqtt"),
}
"""Peer name -> (runner, optional module it needs)."""


def data_for(count: int) -> list[bytes]:
    """The payloads of one run (built before the clock starts)."""
    return payloads(count)
