"""Acknowledge after processing (issue 21): ``Connection.messages(f, qos, manual_ack=True)``.

Against Mosquitto: unacknowledged messages come again after the link is cut (and acknowledged
ones do not), and the client's Receive Maximum stops the broker while acknowledgements are
held. Against a scripted raw MQTT 5 peer, which sees every byte the client sends: PUBACK and
PUBREC leave in arrival order whatever order the application acknowledges in, a message several
subscribers got is acknowledged once all are done, and a QoS 2 message is delivered once.

Where a test must show that nothing was sent yet, the client publishes a QoS 0 "sync" message:
the client writes its packets in order, so an acknowledgement sent before the sync would reach
the peer before it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

import rxmqtt
from rxmqtt import (
    Connected,
    Connection,
    ConnectionSettings,
    ConnectionState,
    Delivery,
    LifecycleEvent,
    Message,
    SubscribeError,
)
from rxmqtt.binders import AioError, CommandExecutor, ErrorKind, Telemetry, TelemetryReceiver
from rxmqtt.testing import FaultProxy, MosquittoBroker
from rxmqtt.testing._peer import (
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PeerLink,
    ScriptedPeer,
    ack,
    connack,
    message_expiry,
    packet_id_of,
    parse_publish,
    properties,
    publish,
    reply,
)
from rxmqtt.testing._raw import mqtt_str, packet
from rxmqtt.testing.recorder import Recorder
from tests._helpers import FAST_NO_JITTER, named_settings

pytestmark = pytest.mark.broker

DEADLINE = 15.0


def settings(port: int, **overrides: object) -> ConnectionSettings:
    """A named client (its session persists across reconnects)."""
    return named_settings(port, "ack", **overrides)


def payloads(deliveries: list[Delivery]) -> list[bytes]:
    return [d.message.payload for d in deliveries]


async def connections(events: Recorder[LifecycleEvent], count: int) -> Connected:
    """Wait for the ``count``-th CONNACK; returns it."""
    items = await events.wait_until(
        lambda items: sum(isinstance(e, Connected) for e in items) >= count, DEADLINE, "CONNACK"
    )
    return [e for e in items if isinstance(e, Connected)][count - 1]


async def read_by_broker(conn: Connection) -> None:
    """Return once the broker read everything ``conn`` sent before: a QoS 1 round trip (a broker
    handles one connection's packets in order)."""
    await asyncio.wait_for(conn.publish("ack/sync", b"", qos=1), DEADLINE)


# ----------------------------------------------------------------------------- Mosquitto


@pytest.mark.parametrize("qos", [1, 2])
async def test_unacknowledged_messages_come_again_after_a_cut_and_acknowledged_ones_do_not(
    qos: int, mqtt_version: int, rxmqtt_mosquitto: MosquittoBroker, rxmqtt_fault_proxy: FaultProxy
) -> None:
    topic = f"ack/cut/{qos}"
    version = {"protocol_version": mqtt_version}
    receiver = Connection(settings(rxmqtt_fault_proxy.port, **version), reconnect=FAST_NO_JITTER)
    sender = Connection(settings(rxmqtt_mosquitto.port, **version), reconnect=FAST_NO_JITTER)
    events: Recorder[LifecycleEvent] = Recorder(receiver.lifecycle)
    got: Recorder[Delivery] = Recorder(receiver.messages(f"{topic}/#", qos, manual_ack=True))
    async with receiver, sender:
        assert await asyncio.wait_for(receiver.subscription_granted(f"{topic}/#"), DEADLINE) == qos
        await sender.wait_for(ConnectionState.CONNECTED, DEADLINE)
        for n in range(6):
            await asyncio.wait_for(sender.publish(f"{topic}/m", b"%d" % n, qos=qos), DEADLINE)
        first = list(await got.wait_for_count(6, DEADLINE))
        assert payloads(first) == [b"0", b"1", b"2", b"3", b"4", b"5"]

        async def cut_then_mark(links: int, marker: bytes) -> list[Delivery]:
            """Cut the link once the broker has read every acknowledgement, wait for the
            ``links``-th CONNACK (the session kept), publish ``marker``: what came since."""
            await read_by_broker(receiver)
            seen = len(got.items)
            rxmqtt_fault_proxy.reset()
            assert (await connections(events, links)).session_present
            await asyncio.wait_for(sender.publish(f"{topic}/m", marker, qos=qos), DEADLINE)
            await got.wait_until(lambda items: marker in payloads(items), DEADLINE, repr(marker))
            return got.items[seen:]

        first[1].ack()  # acknowledged out of order: 1 waits for 0
        first[0].ack()
        second = await cut_then_mark(2, b"marker")  # the link dies with 2..5 unacknowledged
        assert payloads(second) == [b"2", b"3", b"4", b"5", b"marker"]

        # The first link's deliveries: acknowledging them now does nothing (no error, and no
        # PUBACK/PUBREC that the broker would take for the new deliveries' packet ids).
        for delivery in first:
            delivery.ack()
        third = await cut_then_mark(3, b"marker 2")
        assert payloads(third) == [b"2", b"3", b"4", b"5", b"marker", b"marker 2"]

        for delivery in third:  # acknowledged: nothing comes again after the next cut
            delivery.ack()
        assert payloads(await cut_then_mark(4, b"marker 3")) == [b"marker 3"]


async def test_receive_maximum_stops_the_broker_until_a_message_is_acknowledged(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    window = 3
    receiver = Connection(settings(rxmqtt_mosquitto.port, receive_maximum=window))
    sender = Connection(settings(rxmqtt_mosquitto.port))
    async with receiver, sender:
        stream = rxmqtt.aiter(receiver.messages("ack/window/#", 1, manual_ack=True))
        markers: Recorder[Message] = Recorder(receiver.messages("ack/marker", 0))
        await asyncio.wait_for(receiver.subscription_granted("ack/window/#"), DEADLINE)
        await asyncio.wait_for(receiver.subscription_granted("ack/marker"), DEADLINE)
        await sender.wait_for(ConnectionState.CONNECTED, DEADLINE)
        for n in range(8):
            await asyncio.wait_for(sender.publish("ack/window/m", b"%d" % n, qos=1), DEADLINE)
        # QoS 0 is outside the window: once the marker is in, the broker had the 8 and sent
        # every one the window allowed, ahead of the marker.
        await asyncio.wait_for(sender.publish("ack/marker", b"", qos=0), DEADLINE)
        await markers.wait_for_count(1, DEADLINE)
        assert stream.buffered == window

        held = [await anext(stream) for _ in range(window)]
        assert payloads(held) == [b"0", b"1", b"2"]
        held[1].ack()  # not the oldest: the PUBACK waits, and so does the broker
        await asyncio.wait_for(sender.publish("ack/marker", b"", qos=0), DEADLINE)
        await markers.wait_for_count(2, DEADLINE)
        assert stream.buffered == 0
        held[0].ack()  # 0 and 1 acknowledged: the broker sends again
        await asyncio.wait_for(sender.publish("ack/marker", b"", qos=0), DEADLINE)
        await markers.wait_for_count(3, DEADLINE)
        # (Mosquitto 2.0 refills past the window once a PUBACK frees it: it sent 3 here, where
        # MQTT 5 allows 2, and does the same to a plain paho client. The bound above is ours.)
        assert stream.buffered >= 1

        rest: list[bytes] = []
        held[2].ack()
        async for delivery in stream:  # the usual shape: process, then acknowledge
            rest.append(delivery.message.payload)
            delivery.ack()
            if len(rest) == 5:
                break
        assert rest == [b"3", b"4", b"5", b"6", b"7"]


async def test_async_for_with_acks_from_another_thread_loses_nothing(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    receiver = Connection(settings(rxmqtt_mosquitto.port, receive_maximum=2))
    sender = Connection(settings(rxmqtt_mosquitto.port))
    async with receiver, sender:
        stream = rxmqtt.aiter(receiver.messages("ack/thread/#", 1, manual_ack=True))
        seen: list[bytes] = []

        async def consume() -> None:
            async for delivery in stream:
                seen.append(delivery.message.payload)
                await asyncio.to_thread(delivery.ack)  # e.g. a worker thread's database write
                await asyncio.to_thread(delivery.ack)  # twice: idempotent
                if len(seen) == 20:
                    return

        consumer = asyncio.create_task(consume())
        await sender.wait_for(ConnectionState.CONNECTED, DEADLINE)
        await asyncio.wait_for(receiver.subscription_granted("ack/thread/#"), DEADLINE)
        for n in range(20):
            sender.publish("ack/thread/m", b"%d" % n, qos=1)
        await asyncio.wait_for(consumer, DEADLINE)
        assert seen == [b"%d" % n for n in range(20)]


# ----------------------------------------------------------------------------- the wire


class Wire:
    """What the scripted peer read from the client: ``(kind, packet id)`` for acknowledgements,
    ``("PUBLISH", topic)`` for the client's publishes; and what it should send next."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []
        self.outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._changed = asyncio.Event()

    def record(self, raw: bytes) -> None:
        kind = raw[0] >> 4
        if kind == PUBLISH:
            self.seen.append(("PUBLISH", parse_publish(raw).topic))
        else:
            names = {PUBACK: "PUBACK", PUBREC: "PUBREC", PUBCOMP: "PUBCOMP"}
            self.seen.append((names.get(kind, str(kind)), packet_id_of(raw)))
        self._changed.set()

    async def wait_for(self, entry: tuple[str, object]) -> list[tuple[str, object]]:
        """Wait until the peer read ``entry``; returns everything read so far."""
        async with asyncio.timeout(DEADLINE):
            while entry not in self.seen:
                self._changed.clear()
                await self._changed.wait()
        return self.seen


def peer_script(
    wire: Wire, subscriptions: int, *, refuse: bool = False, answer: bool = False
) -> Callable[..., object]:
    """Grant ``subscriptions`` SUBSCRIBEs (or refuse them), then send what the test puts in
    ``wire.outbox`` while recording what the client sends (and, with ``answer``, acknowledging
    its QoS 1 publishes)."""

    async def script(link: PeerLink) -> None:
        link.send(connack())
        for _ in range(subscriptions):
            link.send(reply(await link.next_request(), b"\x87" if refuse else None))

        async def forward() -> None:
            while True:
                link.send(await wire.outbox.get())
                await link.drain()

        sender = asyncio.create_task(forward())
        try:
            while True:
                raw = await link.read()
                wire.record(raw)
                if answer and raw[0] >> 4 == PUBLISH and parse_publish(raw).qos == 1:
                    link.send(ack(PUBACK, parse_publish(raw).packet_id))
        finally:
            sender.cancel()

    return script


def pubrel(packet_id: int) -> bytes:
    return packet(0x62, packet_id.to_bytes(2, "big") + b"\x00\x00")


async def sync(conn: Connection, wire: Wire, name: str) -> list[tuple[str, object]]:
    """Everything the client sent up to a QoS 0 publish to ``name``."""
    conn.publish(name, b"", qos=0)
    return await wire.wait_for(("PUBLISH", name))


@contextlib.asynccontextmanager
async def held_subscriber(
    wire: Wire, topic_filter: str
) -> AsyncIterator[tuple[Connection, Recorder[Delivery]]]:
    """A connection to a scripted peer with one granted QoS 2 ``manual_ack`` subscription to
    ``topic_filter``: the connection and what that subscription delivered."""
    async with ScriptedPeer(peer_script(wire, 1)) as peer:
        conn = Connection(settings(peer.port), reconnect=FAST_NO_JITTER)
        got: Recorder[Delivery] = Recorder(conn.messages(topic_filter, 2, manual_ack=True))
        async with conn:
            await asyncio.wait_for(conn.subscription_granted(topic_filter), DEADLINE)
            yield conn, got


async def test_acks_leave_in_arrival_order_whatever_order_the_application_acks_in() -> None:
    wire = Wire()
    async with held_subscriber(wire, "order/#") as (conn, got):
        for packet_id, qos in ((1, 1), (2, 2), (3, 1), (4, 1)):
            wire.outbox.put_nowait(
                publish("order/t", b"%d" % packet_id, qos=qos, packet_id=packet_id)
            )
        d1, d2, d3, d4 = await got.wait_for_count(4, DEADLINE)
        assert not any(d.acknowledged_early for d in (d1, d2, d3, d4))
        d3.ack()
        assert await sync(conn, wire, "sync/1") == [("PUBLISH", "sync/1")]
        d1.ack()
        await sync(conn, wire, "sync/2")
        d4.ack()
        await sync(conn, wire, "sync/3")
        d2.ack()
        assert await sync(conn, wire, "sync/4") == [
            ("PUBLISH", "sync/1"),
            ("PUBACK", 1),
            ("PUBLISH", "sync/2"),
            ("PUBLISH", "sync/3"),
            ("PUBREC", 2),  # QoS 2 is acknowledged by PUBREC, in line with the PUBACKs
            ("PUBACK", 3),
            ("PUBACK", 4),
            ("PUBLISH", "sync/4"),
        ]
        wire.outbox.put_nowait(pubrel(2))
        await wire.wait_for(("PUBCOMP", 2))


async def test_a_qos2_message_accepted_once_is_not_delivered_again_on_a_dup() -> None:
    wire = Wire()
    async with held_subscriber(wire, "dup/#") as (conn, got):
        first = publish("dup/t", b"once", qos=2, packet_id=5)
        wire.outbox.put_nowait(first)
        (delivery,) = await got.wait_for_count(1, DEADLINE)
        assert await sync(conn, wire, "sync/1") == [("PUBLISH", "sync/1")]  # held
        delivery.ack()
        await wire.wait_for(("PUBREC", 5))
        wire.outbox.put_nowait(bytes((first[0] | 0x08,)) + first[1:])  # DUP, same id
        wire.outbox.put_nowait(publish("dup/t", b"next", qos=1, packet_id=6))
        await got.wait_for_count(2, DEADLINE)
        assert payloads(got.items) == [b"once", b"next"]
        got.items[1].ack()
        wire.outbox.put_nowait(pubrel(5))
        assert await wire.wait_for(("PUBCOMP", 5)) == [
            ("PUBLISH", "sync/1"),
            ("PUBREC", 5),
            ("PUBREC", 5),  # the DUP is acknowledged again [MQTT-4.3.3-9], not delivered
            ("PUBACK", 6),
            ("PUBCOMP", 5),
        ]


async def test_a_message_several_subscribers_got_is_acknowledged_once_all_are_done() -> None:
    wire = Wire()
    async with ScriptedPeer(peer_script(wire, 3)) as peer:
        conn = Connection(settings(peer.port), reconnect=FAST_NO_JITTER)
        plain: Recorder[Message] = Recorder(conn.messages("multi/#", 1))
        a: Recorder[Delivery] = Recorder(conn.messages("multi/a", 1, manual_ack=True))
        b: Recorder[Delivery] = Recorder(conn.messages("multi/+", 1, manual_ack=True))
        async with conn:
            for topic_filter in ("multi/#", "multi/a", "multi/+"):
                await asyncio.wait_for(conn.subscription_granted(topic_filter), DEADLINE)
            wire.outbox.put_nowait(publish("multi/a", b"1", qos=1, packet_id=1))  # all three
            wire.outbox.put_nowait(publish("multi/b", b"2", qos=1, packet_id=2))  # plain and b
            await b.wait_for_count(2, DEADLINE)
            assert payloads(a.items) == [b"1"]
            assert [m.payload for m in plain.items] == [b"1", b"2"]  # done as on_next returned

            a.items[0].ack()
            await asyncio.to_thread(a.items[0].ack)  # again, from another thread: no effect
            assert await sync(conn, wire, "sync/1") == [("PUBLISH", "sync/1")]
            b.items[1].ack()  # message 2 is done, but waits for message 1
            assert await sync(conn, wire, "sync/2") == [
                ("PUBLISH", "sync/1"),
                ("PUBLISH", "sync/2"),
            ]
            b.items[0].ack()
            assert (await sync(conn, wire, "sync/3"))[-3:] == [
                ("PUBACK", 1),
                ("PUBACK", 2),
                ("PUBLISH", "sync/3"),
            ]

            # A manual subscriber that leaves releases what it held.
            wire.outbox.put_nowait(publish("multi/a", b"3", qos=1, packet_id=3))
            await a.wait_for_count(2, DEADLINE)
            await b.wait_for_count(3, DEADLINE)
            b.items[2].ack()
            assert (await sync(conn, wire, "sync/4"))[-1] == ("PUBLISH", "sync/4")
            a.dispose()
            assert (await sync(conn, wire, "sync/5"))[-2:] == [
                ("PUBACK", 3),
                ("PUBLISH", "sync/5"),
            ]


async def test_without_manual_subscribers_a_message_is_acknowledged_once_dispatched() -> None:
    wire = Wire()
    async with ScriptedPeer(peer_script(wire, 1)) as peer:
        conn = Connection(settings(peer.port), reconnect=FAST_NO_JITTER)

        def read(message: Message) -> None:
            conn.publish(f"sync/in-{message.payload.decode()}", b"", qos=0)

        conn.messages("plain/#", 2).subscribe(read)
        async with conn:
            await asyncio.wait_for(conn.subscription_granted("plain/#"), DEADLINE)
            wire.outbox.put_nowait(publish("plain/t", b"1", qos=1, packet_id=1))
            wire.outbox.put_nowait(publish("plain/t", b"2", qos=2, packet_id=2))
            assert await wire.wait_for(("PUBREC", 2)) == [
                ("PUBLISH", "sync/in-1"),  # on_next ran first
                ("PUBACK", 1),
                ("PUBLISH", "sync/in-2"),
                ("PUBREC", 2),
            ]
            wire.outbox.put_nowait(pubrel(2))
            await wire.wait_for(("PUBCOMP", 2))


async def test_a_refused_subscribe_ends_the_manual_stream_with_the_reason() -> None:
    wire = Wire()
    async with ScriptedPeer(peer_script(wire, 1, refuse=True)) as peer:
        conn = Connection(settings(peer.port), reconnect=FAST_NO_JITTER)
        got: Recorder[Delivery] = Recorder(conn.messages("denied/#", 1, manual_ack=True))
        async with conn:
            with pytest.raises(SubscribeError) as info:
                await asyncio.wait_for(conn.subscription_granted("denied/#"), DEADLINE)
            assert info.value.reason_code == 0x87
            await got.wait_done(DEADLINE)
            assert isinstance(got.error, SubscribeError)
            assert got.error.topic_filter == "denied/#"


async def test_ack_after_close_does_nothing_and_plain_streams_still_ack_on_return() -> None:
    wire = Wire()
    async with ScriptedPeer(peer_script(wire, 2)) as peer:
        conn = Connection(settings(peer.port), reconnect=FAST_NO_JITTER)
        got: Recorder[Delivery] = Recorder(conn.messages("late/#", 1, manual_ack=True))
        plain: Recorder[Message] = Recorder(conn.messages("plain/#", 1))
        async with conn:
            await asyncio.wait_for(conn.subscription_granted("late/#"), DEADLINE)
            await asyncio.wait_for(conn.subscription_granted("plain/#"), DEADLINE)
            wire.outbox.put_nowait(publish("plain/t", b"p", qos=1, packet_id=1))
            await wire.wait_for(("PUBACK", 1))  # nobody acknowledges by hand: at once
            assert len(plain.items) == 1
            wire.outbox.put_nowait(publish("late/t", b"x", qos=1, packet_id=2))
            (delivery,) = await got.wait_for_count(1, DEADLINE)
        delivery.ack()  # closed: a no-op, never an error
        await asyncio.to_thread(delivery.ack)
        assert ("PUBACK", 2) not in wire.seen


# ----------------------------------------------------------------------------- the AIO envoys


def request(packet_id: int, payload: bytes) -> bytes:
    """An AIO command request PUBLISH (QoS 1) to ``rpc/add``, answered on ``resp/add``."""
    props = properties(
        message_expiry(10),
        b"\x08" + mqtt_str("resp/add"),  # Response Topic
        b"\x09" + mqtt_str(bytes(range(16))),  # Correlation Data: a GUID's 16 bytes
    )
    return publish("rpc/add", payload, qos=1, packet_id=packet_id, props=props)


@pytest.mark.parametrize("fails", [False, True])
async def test_an_executor_acknowledges_a_request_once_its_answer_was_acknowledged(
    fails: bool,
) -> None:
    """A request's PUBACK waits for the handler and for the broker to take the response (a
    500 when the handler fails): a crash in between gets the request sent again."""
    wire = Wire()
    release = asyncio.Event()

    started = asyncio.Event()

    async def add(numbers: list[int]) -> int:
        started.set()
        await release.wait()
        if fails:
            raise RuntimeError("the database is down")
        return sum(numbers)

    async with ScriptedPeer(peer_script(wire, 1, answer=True)) as peer:
        conn = Connection(settings(peer.port), reconnect=FAST_NO_JITTER)
        async with conn:
            executor = CommandExecutor(conn, "rpc/add", add, command_name="add")
            await asyncio.wait_for(executor.start(), DEADLINE)  # the SUBACK is in
            wire.outbox.put_nowait(request(1, b"[1, 2]"))
            await asyncio.wait_for(started.wait(), DEADLINE)
            assert await sync(conn, wire, "sync/1") == [("PUBLISH", "sync/1")]  # running
            release.set()
            seen = await wire.wait_for(("PUBACK", 1))
            assert seen == [("PUBLISH", "sync/1"), ("PUBLISH", "resp/add"), ("PUBACK", 1)]
            executor.dispose()


async def test_a_telemetry_receiver_acknowledges_once_its_readers_returned() -> None:
    wire = Wire()
    async with ScriptedPeer(peer_script(wire, 1)) as peer:
        conn = Connection(settings(peer.port), reconnect=FAST_NO_JITTER)
        async with conn:
            receiver: TelemetryReceiver[int] = TelemetryReceiver(conn, "tel/{senderId}")
            seen: list[int] = []

            def read(sample: Telemetry[int]) -> None:
                seen.append(sample.value)
                conn.publish("sync/in-reader", b"", qos=0)  # written before any PUBACK 1

            receiver.telemetry.subscribe(read)
            await asyncio.wait_for(receiver.start(), DEADLINE)
            wire.outbox.put_nowait(publish("tel/s-1", b"21", qos=1, packet_id=1))
            assert await wire.wait_for(("PUBACK", 1)) == [
                ("PUBLISH", "sync/in-reader"),
                ("PUBACK", 1),
            ]
            assert seen == [21]
            receiver.dispose()


async def test_a_telemetry_receiver_start_needs_a_reader_and_reports_a_refusal() -> None:
    wire = Wire()
    async with ScriptedPeer(peer_script(wire, 1, refuse=True)) as peer:
        conn = Connection(settings(peer.port), reconnect=FAST_NO_JITTER)
        async with conn:
            receiver: TelemetryReceiver[int] = TelemetryReceiver(conn, "tel/denied")
            with pytest.raises(RuntimeError, match="subscribe to telemetry"):
                receiver.start()
            errors: list[Exception] = []
            receiver.telemetry.subscribe(on_error=errors.append)
            with pytest.raises(AioError) as info:
                await asyncio.wait_for(receiver.start(), DEADLINE)
            assert info.value.kind is ErrorKind.MQTT_ERROR
            assert "0x87" in str(info.value)
            receiver.dispose()
