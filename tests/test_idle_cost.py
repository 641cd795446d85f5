"""What an idle connection costs, kept small without losing behaviour: keep-alive pings on time
with deadline-driven wake-ups, the queue sweep only while something is queued, the state streams
without a scheduled observer per subscriber, CONNECT properties without per-instance tables."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
import pytest
import reactivex
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from reactivex import abc
from reactivex.disposable import Disposable
from reactivex.subject import Subject
from reactivex.testing import TestScheduler

from rxmqtt import (
    Backoff,
    Connection,
    ConnectionSettings,
    ConnectionState,
    Disconnected,
    DroppedMessage,
    DropReason,
    Jitter,
    Message,
    PublishProperties,
    ReconnectPolicy,
)
from rxmqtt._ack_ledger import AckLedger
from rxmqtt._current_value import CurrentValue
from rxmqtt._grace_buffer import GraceBuffer
from rxmqtt._isolate import isolated
from rxmqtt._lazy_subject import LazySubject
from rxmqtt._publisher import HOUSEKEEPING_INTERVAL, Publisher
from rxmqtt.broker_limits import BrokerLimits
from rxmqtt.connection._reconnect_loop import ReconnectLoop
from rxmqtt.engine._convert import _properties
from rxmqtt.engine._paho_client import _PahoClient
from rxmqtt.engine._socket_pump import SocketPump
from rxmqtt.lifecycle import Disconnect
from rxmqtt.operators import retry_with_backoff
from rxmqtt.policies import GracePeriod, PublishRetry, QueuePolicy
from rxmqtt.queue import OfflineQueue, QueueStats
from rxmqtt.testing import MosquittoBroker
from rxmqtt.testing._peer import PINGREQ, PeerLink, ScriptedPeer, connack
from rxmqtt.testing._process import free_port
from rxmqtt.testing._raw import packet
from rxmqtt.testing.proxy import FaultProxy
from rxmqtt.testing.recorder import Recorder
from tests._helpers import until

# ----------------------------------------------------------------------------- keep-alive


async def test_an_idle_connection_pings_after_each_keep_alive_of_silence() -> None:
    """The watchdog sleeps until paho's next PINGREQ is due: the pings must still come after
    keep_alive of silence, and well before the broker's 1.5 x keep_alive limit."""
    keep_alive = 1
    pings: list[float] = []
    three: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def script(link: PeerLink) -> None:
        link.send(connack())
        last = time.monotonic()
        while len(pings) < 3:
            raw = await link.read_raw()
            now = time.monotonic()
            if raw[0] >> 4 == PINGREQ:
                pings.append(now - last)
                link.send(packet(0xD0, b""))
            last = now
        three.set_result(None)
        await link.read_raw()  # (until the client goes)

    async with ScriptedPeer(script) as peer:
        settings = ConnectionSettings(
            host="127.0.0.1", port=peer.port, client_id="idle-pings", keep_alive=keep_alive
        )
        async with Connection(settings):
            await asyncio.wait_for(three, 20)
    assert len(pings) == 3
    for gap in pings:
        assert keep_alive - 0.05 <= gap < 1.5 * keep_alive, pings


async def test_an_idle_ping_is_written_at_once_without_a_later_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PINGREQ with nothing queued ahead of it goes out in one send() from the keep-alive
    tick: the socket pump is never asked to write it later (another loop callback per ping,
    or, when the socket was full, an epoll change and a wake-up, for every idle connection)."""
    pings: list[float] = []
    three: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def script(link: PeerLink) -> None:
        link.send(connack())
        while len(pings) < 3:
            raw = await link.read_raw()
            if raw[0] >> 4 == PINGREQ:
                pings.append(time.monotonic())
                link.send(packet(0xD0, b""))
        three.set_result(None)
        await link.read_raw()  # (until the client goes)

    asked: list[object] = []
    async with ScriptedPeer(script) as peer:
        settings = ConnectionSettings(
            host="127.0.0.1", port=peer.port, client_id="idle-direct-ping", keep_alive=1
        )
        async with Connection(settings) as conn:
            await conn.wait_for(ConnectionState.CONNECTED, 5)
            want_write = SocketPump.want_write

            def counting_want_write(pump: SocketPump, sock: Any) -> None:
                asked.append(sock)
                want_write(pump, sock)

            monkeypatch.setattr(SocketPump, "want_write", counting_want_write)
            await asyncio.wait_for(three, 20)
            while_idle = list(asked)  # (the DISCONNECT of the close may be queued)
            assert conn.state is ConnectionState.CONNECTED
    assert len(pings) == 3
    assert while_idle == [], f"{len(while_idle)} writes left to the loop for 3 idle pings"


def test_a_ping_behind_a_full_socket_buffer_waits_for_the_socket() -> None:
    """When the socket cannot take the PINGREQ now, it is queued the paho way (the socket is
    watched for writability) and written once the peer reads."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setblocking(False)
        client = _PahoClient(CallbackAPIVersion.VERSION2, client_id="ping-full")
        registered: list[object] = []
        client.on_socket_register_write = lambda _c, _u, sock: registered.append(sock)
        client._sock = ours  # (the adapter's own socket, as connect() sets it)
        with contextlib.suppress(BlockingIOError):
            while True:
                ours.send(b"x" * 65536)
        assert client._send_pingreq() == paho.MQTT_ERR_SUCCESS
        assert registered == [ours], "the socket is watched for writability"
        theirs.setblocking(False)
        drained = b""
        for _ in range(10_000):  # bounded: until the PINGREQ is through
            with contextlib.suppress(BlockingIOError):
                drained += theirs.recv(1 << 20)
            client.loop_write()
            if drained.endswith(bytes((0xC0, 0))):
                break
        assert drained.endswith(bytes((0xC0, 0))), "the queued PINGREQ was written"
        client._sock = None  # (closed by the with block, not by paho)


async def test_pings_written_at_once_keep_a_slow_link_alive(
    rxmqtt_fault_proxy: FaultProxy,
) -> None:
    """Through a proxy that delays every byte by 0.2 s each way, keep-alive 2 s (a PINGRESP may
    take 0.8 s): the PINGREQs written straight to the socket and their late PINGRESPs keep the
    link up for three keep-alive periods."""
    settings = ConnectionSettings(
        host=rxmqtt_fault_proxy.host,
        port=rxmqtt_fault_proxy.port,
        client_id="idle-slow-pings",
        keep_alive=2,
    )
    conn = Connection(settings)
    events = Recorder(conn.lifecycle)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        (link,) = rxmqtt_fault_proxy.connections
        answered = link.bytes_to_client
        rxmqtt_fault_proxy.delay(0.2)
        # three PINGRESPs (2 bytes each) through the slow proxy: three keep-alive periods
        await until(lambda: link.bytes_to_client >= answered + 6, "three PINGRESPs", 10)
        assert conn.state is ConnectionState.CONNECTED
        assert not [e for e in events.items if isinstance(e, Disconnected)]
        rxmqtt_fault_proxy.delay(0)


# ----------------------------------------------------------------------------- queue sweep


class _Wire:
    """The publisher's view of an engine: up or down, every publish acknowledged by hand."""

    def __init__(self) -> None:
        self.link_up = False
        self.receive_maximum = 20
        self.limits = BrokerLimits()
        self.mids = iter(range(1, 1000))

    def publish(self, message: Message) -> int:
        return next(self.mids)

    def in_flight_mids(self) -> list[int]:
        return []

    def publishes_on_the_wire(self) -> list[int]:
        return []

    def isolate_publishes(self) -> None:
        pass

    def forget_publish(self, mid: int) -> None:
        pass

    def abort(self, disconnect: Disconnect) -> None:
        pass


class _Timers:
    """``call_later`` that only records: the test fires what it wants."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, Callable[[], None], _Timers.Handle]] = []

    class Handle:
        cancelled = False

        def cancel(self) -> None:
            self.cancelled = True

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timers.Handle:
        handle = _Timers.Handle()
        self.pending.append((delay, callback, handle))
        return handle

    def live(self, delay: float) -> list[Callable[[], None]]:
        return [cb for d, cb, h in self.pending if d == delay and not h.cancelled]

    def fire(self, delay: float) -> None:
        due = [(d, cb, h) for d, cb, h in self.pending if d == delay and not h.cancelled]
        self.pending = [entry for entry in self.pending if entry not in due]
        for _, callback, _ in due:
            callback()


def _publisher(timers: _Timers, wire: _Wire) -> tuple[Publisher, list[QueueStats]]:
    stats: list[QueueStats] = []
    publisher = Publisher(
        QueuePolicy(),
        PublishRetry(),
        clock=time.monotonic,
        on_dropped=lambda _d: None,
        on_stats=stats.append,
    )
    publisher.attach(wire, timers.call_later)
    return publisher, stats


def test_an_empty_queue_keeps_no_sweep_timer() -> None:
    timers = _Timers()
    wire = _Wire()
    wire.link_up = True
    publisher, _ = _publisher(timers, wire)
    from rxmqtt._outcome import Outcome

    publisher.publish(Message("t", b"x", 0), Outcome())
    for delay in {d for d, _, _ in timers.pending if d != HOUSEKEEPING_INTERVAL}:
        timers.fire(delay)  # the coalesced statistics
    assert timers.live(HOUSEKEEPING_INTERVAL) == []


def test_the_sweep_runs_while_something_is_queued_and_stops_after() -> None:
    from rxmqtt._outcome import Outcome

    timers = _Timers()
    wire = _Wire()
    publisher, _ = _publisher(timers, wire)
    assert timers.live(HOUSEKEEPING_INTERVAL) == []
    publisher.publish(Message("t", b"x", 1), Outcome())  # offline: queued
    assert len(timers.live(HOUSEKEEPING_INTERVAL)) == 1
    timers.fire(HOUSEKEEPING_INTERVAL)
    assert len(timers.live(HOUSEKEEPING_INTERVAL)) == 1, "still queued: swept again"
    wire.link_up = True
    publisher.link_established()  # drained to the wire
    publisher.acknowledged(1, 0, "Success")
    for delay in {d for d, _, _ in timers.pending if d != HOUSEKEEPING_INTERVAL}:
        timers.fire(delay)
    timers.fire(HOUSEKEEPING_INTERVAL)
    assert timers.live(HOUSEKEEPING_INTERVAL) == [], "nothing queued: no more sweeps"


async def test_an_offline_message_still_expires_in_the_queue() -> None:
    """The sweep is armed by the queue itself now: a message that expires while the connection
    is offline is still reported on ``dropped``."""
    port = free_port()  # nothing listens there: the connection stays offline
    settings = ConnectionSettings(host="127.0.0.1", port=port, client_id="idle-expiry")
    policy = ReconnectPolicy(backoff=Backoff(1, 1, jitter=Jitter.NONE))
    expired: asyncio.Future[DroppedMessage] = asyncio.get_running_loop().create_future()

    def on_dropped(dropped: DroppedMessage) -> None:
        if dropped.reason is DropReason.EXPIRED and not expired.done():
            expired.set_result(dropped)

    conn = Connection(settings, reconnect=policy)
    conn.dropped.subscribe(on_dropped)
    async with conn:
        expiring = PublishProperties(message_expiry_interval=1)
        conn.publish("idle/expiry", b"x", qos=1, properties=expiring)
        dropped = await asyncio.wait_for(expired, 10)
    assert dropped.message.topic == "idle/expiry"


# ----------------------------------------------------------------------------- streams


def test_current_value_replays_the_latest_then_follows() -> None:
    subject: CurrentValue[int] = CurrentValue()
    early: list[int] = []
    subject.subscribe(early.append)
    assert early == [], "nothing before the first value"
    subject.on_next(1)
    subject.on_next(2)
    late: list[int] = []
    subject.subscribe(late.append)
    subject.on_next(3)
    assert (early, late) == ([1, 2, 3], [2, 3])


def test_current_value_after_completion_gives_the_last_value_then_completes() -> None:
    subject: CurrentValue[str] = CurrentValue()
    subject.on_next("closed")
    subject.on_completed()
    subject.on_next("ignored")
    seen: list[object] = []
    subject.subscribe(seen.append, on_completed=lambda: seen.append("done"))
    assert seen == ["closed", "done"]


def test_a_disposed_subscriber_hears_no_more() -> None:
    subject: CurrentValue[int] = CurrentValue()
    seen: list[int] = []
    subscription = subject.subscribe(seen.append)
    subject.on_next(1)
    subscription.dispose()
    subject.on_next(2)
    assert seen == [1]


# ----------------------------------------------------------------------------- properties


def test_shared_table_properties_pack_as_paho_does() -> None:
    ours = _properties(PacketTypes.CONNECT)
    theirs = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    for props in (ours, theirs):
        props.SessionExpiryInterval = 300
        props.ReceiveMaximum = 10
        props.UserProperty = ("a", "b")
    assert ours.pack() == theirs.pack()
    assert isinstance(ours, Properties)
    assert "names" not in vars(ours), "the tables are shared"
    assert "properties" not in vars(ours), "the tables are shared"
    with pytest.raises(Exception, match="does not apply"):
        ours.ServerKeepAlive = 5  # paho's own check still applies (a CONNACK-only property)


# ----------------------------------------------------------------------------- held memory


def _held_per_item(make: Callable[[], object], count: int = 200) -> float:
    """Bytes of Python heap each of ``count`` results of ``make()`` keeps, while kept."""
    kept: list[object] = []
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(count):
            kept.append(make())
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return held / count


def test_a_waiting_retry_with_backoff_subscription_is_small() -> None:
    """Every connection holds its reconnect loop's retry_with_backoff subscription for life:
    built from retry_when, a Subject and flat_map it held 6.7 KiB; in one object, 2.3."""
    retried = reactivex.never().pipe(retry_with_backoff(Backoff(1, 2), scheduler=TestScheduler()))
    assert _held_per_item(lambda: retried.subscribe(lambda _: None)) < 4096


def test_an_unused_queue_buffer_and_ledger_share_one_empty_deque() -> None:
    """What a connection never uses costs no 768-byte deque each; the first use gives the
    user one of its own, and the others stay empty."""
    queues = [OfflineQueue(QueuePolicy()) for _ in range(2)]
    buffers = [GraceBuffer(GracePeriod(), time.monotonic) for _ in range(2)]
    ledgers = [AckLedger() for _ in range(2)]
    assert _held_per_item(lambda: OfflineQueue(QueuePolicy())) < 768
    assert _held_per_item(lambda: GraceBuffer(GracePeriod(), time.monotonic)) < 512
    assert _held_per_item(AckLedger) < 256
    queues[0].offer(Message("t", b"x", 1))
    buffers[0].open_window()
    assert buffers[0].offer(Message("t", b"y", 1)) == []
    ledgers[0].receive(1, 1)
    assert (len(queues[0]), len(queues[1])) == (1, 0)
    assert (len(buffers[0]), len(buffers[1])) == (1, 0)
    assert (ledgers[0].pending, ledgers[1].pending) == (1, 0)
    assert queues[1].pop() is None
    assert buffers[1].expire() == []


def test_a_fenced_subscriber_is_one_small_object() -> None:
    """isolated() fences every subscriber of every stream of every connection: one slotted
    observer (1.9 KiB a subscription, the Subject's share included), not three closures and
    a wrapping Disposable (2.5 KiB)."""
    stream = isolated(Subject[int]())
    assert _held_per_item(lambda: stream.subscribe(lambda _: None)) < 2200


# ----------------------------------------------------------------------------- lazy streams


def test_a_lazy_subject_made_late_replays_the_latest_value_then_follows() -> None:
    stream: LazySubject[int] = LazySubject(current_value=True)
    stream.on_next(1)
    stream.on_next(2)
    seen: list[object] = []
    stream.subject().subscribe(seen.append, on_completed=lambda: seen.append("done"))
    stream.on_next(3)
    stream.on_completed()
    assert seen == [2, 3, "done"]
    after: list[object] = []
    stream.subject().subscribe(after.append, on_completed=lambda: after.append("done"))
    assert after == [3, "done"]


def test_a_lazy_subject_completed_before_it_was_made_gives_the_last_value_and_completes() -> None:
    current: LazySubject[str] = LazySubject(current_value=True)
    hot: LazySubject[str] = LazySubject()
    for stream in (current, hot):
        stream.on_next("last")
        stream.on_completed()
        stream.on_next("after the end")
    seen: list[str] = []
    current.subject().subscribe(seen.append, on_completed=lambda: seen.append("done"))
    hot.subject().subscribe(seen.append, on_completed=lambda: seen.append("done"))
    assert seen == ["last", "done", "done"], "a hot stream replays nothing"


def test_a_lazy_subject_is_observed_only_while_subscribed() -> None:
    stream: LazySubject[int] = LazySubject()
    assert not stream.observed
    subscription = stream.subject().subscribe(lambda _: None)
    assert stream.observed
    subscription.dispose()
    assert not stream.observed


async def test_streams_subscribed_late_still_see_the_connection_as_it_is(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    """A connection makes its streams' Subjects only when asked: subscribed after CONNECTED,
    connection_state and queue_stats still start with the current value, lifecycle and
    disconnects still hear what comes next, and after close() every one completes."""
    conn = Connection(
        ConnectionSettings(
            host=rxmqtt_mosquitto.host, port=rxmqtt_mosquitto.port, client_id="lazy-streams"
        )
    )
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        assert conn._lifecycle._subject is None, "nobody asked for lifecycle yet"
        states = Recorder(conn.connection_state)
        stats = Recorder(conn.queue_stats)
        events = Recorder(conn.lifecycle)
        disconnects = Recorder(conn.disconnects)
        assert states.items == [ConnectionState.CONNECTED]
        assert len(stats.items) == 1
        assert stats.items[0].depth == 0
    assert states.items[-1] is ConnectionState.CLOSED
    assert [type(e).__name__ for e in events.items] == ["Disconnected", "Closed"]
    assert [d.reason for d in disconnects.items] == ["closed by the application"]
    for recorder in (states, stats, events, disconnects):
        assert recorder.completed
    late = Recorder(conn.connection_state)
    assert late.items == [ConnectionState.CLOSED]
    assert late.completed
    assert Recorder(conn.dropped).completed
    assert Recorder(conn.unmatched_messages).completed


class _QuietEngine:
    """An engine whose attempts never end: what a connected link looks like to its loop."""

    link_up = False
    attempt_in_progress = False
    connections = 0

    def watch_new_attempt(
        self, observer: object, endpoint: object, *, clean_start: bool
    ) -> abc.DisposableBase:
        return Disposable()

    def watch_current_attempt(self, observer: object) -> abc.DisposableBase:
        return Disposable()

    def attempt(self, endpoint: object, *, clean_start: bool) -> reactivex.Observable[object]:
        return reactivex.create(lambda _observer, _scheduler: Disposable())

    def current_attempt(self) -> reactivex.Observable[object]:
        return reactivex.create(lambda _observer, _scheduler: Disposable())


def test_a_reconnect_loop_watching_its_attempt_is_small() -> None:
    """A connection's reconnect loop watches its attempt for the connection's whole life:
    ``defer(round)`` with ``catch`` and the attempt's observable held 6.8 KiB of Rx objects,
    each with its lock; one ``_Round`` watching the engine directly and a lazily made backoff,
    about 3 KiB (the loop itself included)."""
    settings = ConnectionSettings(host="127.0.0.1", client_id="quiet")
    scheduler = TestScheduler()

    def started() -> ReconnectLoop:
        loop = ReconnectLoop(settings, ReconnectPolicy(), lambda _event: None)
        loop.start(_QuietEngine(), scheduler)  # type: ignore[arg-type]
        return loop

    assert _held_per_item(started) < 4608
