"""First contact against a real Mosquitto: ``async for`` over the connection's streams,
``await subscribe()``, the MQTT 5 subscription options, a URL as the settings, and the
session rule (a random client id leaves no session behind)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

import rxmqtt
from rxmqtt import (
    Connected,
    Connection,
    ConnectionSettings,
    ConnectionState,
    DropReason,
    LifecycleEvent,
    Message,
    SubscribeError,
)
from rxmqtt.errors import MqttError
from rxmqtt.testing import BrokerConfig, MosquittoBroker
from rxmqtt.testing._peer import PeerLink, ScriptedPeer, connack, reply
from rxmqtt.testing.plugin import BrokerFactory
from rxmqtt.testing.recorder import Recorder
from tests._helpers import FAST

pytestmark = pytest.mark.broker

_ids = itertools.count()


def _url(broker: MosquittoBroker, name: str = "s", version: int = 5) -> str:
    return (
        f"mqtt://{broker.host}:{broker.port}?client_id=st-{name}-{next(_ids)}"
        f"&protocol_version={version}"
    )


def _connect(
    broker: MosquittoBroker, name: str = "s", version: int = 5, **overrides: Any
) -> Connection:
    return Connection(_url(broker, name, version), reconnect=FAST, **overrides)


async def _wait_log(broker: MosquittoBroker, text: str, count: int = 1, timeout: float = 5) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while broker.log_text().count(text) < count:
        if loop.time() > deadline:
            raise TimeoutError(f"broker log never said {text!r} {count} times")
        await asyncio.sleep(0.02)


def _unsubscribes(broker: MosquittoBroker, conn: Connection) -> int:
    return broker.log_text().count(f"Received UNSUBSCRIBE from {conn.settings.client_id}")


# ------------------------------------------------------------------------- async for


@pytest.mark.parametrize("how", ["break", "return", "exception", "cancel"])
async def test_leaving_the_loop_sends_unsubscribe(
    rxmqtt_mosquitto: MosquittoBroker, how: str, mqtt_version: int
) -> None:
    async with (
        _connect(rxmqtt_mosquitto, "pub", mqtt_version) as pub,
        _connect(rxmqtt_mosquitto, version=mqtt_version) as sub,
    ):
        await pub.wait_for(ConnectionState.CONNECTED, 5)
        got: list[Message] = []

        async def read() -> str:
            async for message in sub.messages("leave/#", qos=1):
                got.append(message)
                if how == "break":
                    break
                if how == "return":
                    return "returned"
                if how == "exception":
                    raise LookupError("stop")
            return "ended"

        task = asyncio.ensure_future(read())
        await asyncio.sleep(0)  # the loop has subscribed and waits
        await sub.subscribe("leave/#", qos=1)  # the broker granted the loop's filter
        await sub.unsubscribe("leave/#")  # the loop is the only holder again
        await pub.publish("leave/1", b"x", qos=1)
        if how == "cancel":
            await _until(lambda: bool(got))
            task.cancel()
        raised = {"exception": LookupError, "cancel": asyncio.CancelledError}.get(how)
        if raised is None:
            assert await asyncio.wait_for(task, 5) == ("returned" if how == "return" else "ended")
        else:
            with pytest.raises(raised):
                await asyncio.wait_for(task, 5)
        assert [m.payload for m in got] == [b"x"]
        await _wait_log(rxmqtt_mosquitto, f"Received UNSUBSCRIBE from {sub.settings.client_id}")
        assert sub._subscriptions.get("leave/#") is None
        assert (
            rxmqtt_mosquitto.log_text().count(f"Received SUBSCRIBE from {sub.settings.client_id}")
            == 1
        )


async def _until(predicate: Any, timeout: float = 5) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("condition never held")
        await asyncio.sleep(0.01)


async def test_only_the_last_reader_leaving_unsubscribes(
    rxmqtt_mosquitto: MosquittoBroker, mqtt_version: int
) -> None:
    async with (
        _connect(rxmqtt_mosquitto, "pub", mqtt_version) as pub,
        _connect(rxmqtt_mosquitto, version=mqtt_version) as sub,
    ):
        first = rxmqtt.aiter(sub.messages("two/+", qos=1))
        second = rxmqtt.aiter(sub.messages("two/+", qos=1))
        await sub.subscribe("two/+", qos=1)  # wait for the readers' SUBACK
        await sub.unsubscribe("two/+")
        await pub.wait_for(ConnectionState.CONNECTED, 5)
        await pub.publish("two/a", b"1", qos=1)
        assert (await anext(first)).payload == b"1"
        assert (await anext(second)).payload == b"1"
        await first.aclose()
        await pub.publish("two/a", b"2", qos=1)
        assert (await asyncio.wait_for(anext(second), 5)).payload == b"2"
        assert _unsubscribes(rxmqtt_mosquitto, sub) == 0, "a reader is left"
        await second.aclose()
        await _wait_log(rxmqtt_mosquitto, f"Received UNSUBSCRIBE from {sub.settings.client_id}")


async def test_every_stream_loop_ends_when_the_connection_closes(
    rxmqtt_mosquitto: MosquittoBroker, mqtt_version: int
) -> None:
    conn = _connect(rxmqtt_mosquitto, version=mqtt_version)
    seen: dict[str, list[Any]] = {}

    async def drain(name: str, stream: Any) -> None:
        seen[name] = [item async for item in stream]

    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        tasks = [
            asyncio.ensure_future(drain("messages", conn.messages("end/#"))),
            asyncio.ensure_future(drain("state", conn.connection_state)),
            asyncio.ensure_future(drain("lifecycle", conn.lifecycle)),
            asyncio.ensure_future(drain("disconnects", conn.disconnects)),
        ]
        await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert seen["messages"] == []
    assert seen["state"] == [ConnectionState.CONNECTED, ConnectionState.CLOSED]
    assert [type(e).__name__ for e in seen["lifecycle"]] == ["Disconnected", "Closed"]
    assert [d.reason for d in seen["disconnects"]] == ["closed by the application"]


async def test_a_slow_reader_under_a_flood_stays_bounded_and_counts_what_it_lost(
    rxmqtt_mosquitto_factory: BrokerFactory,
) -> None:
    """20,000 QoS 0 messages into a loop that reads one per event-loop pass with a buffer of
    50: the buffer never holds more than 50, and every message was read or reported dropped
    (on the iterator's count and on ``Connection.dropped``, as UNREAD)."""
    broker = rxmqtt_mosquitto_factory(BrokerConfig(max_queued_messages=0))  # Mosquitto: no cap
    total, size = 20_000, 50
    async with _connect(broker, "pub") as pub, _connect(broker) as sub:
        dropped = Recorder(sub.dropped)
        it = rxmqtt.aiter(sub.messages("flood"), buffer=size)
        await sub.subscribe("flood")
        await sub.unsubscribe("flood")
        await pub.wait_for(ConnectionState.CONNECTED, 5)
        publishing = asyncio.ensure_future(
            asyncio.gather(*(pub.publish("flood", b"%d" % i) for i in range(total)))
        )
        await pub.publish("flood", b"end", qos=1)
        read, peak = 0, 0
        async for message in it:
            peak = max(peak, it.buffered + 1)
            if message.payload == b"end":
                break
            read += 1
            await asyncio.sleep(0)  # slow: one message per pass, while the socket floods in
        await publishing
    print(f"\nflood: {total} sent, {read} read, {it.dropped} dropped, peak buffer {peak}/{size}")
    assert peak <= size
    assert it.dropped > 0, "the reader was slower than the flood"
    assert read + it.dropped == total, (read, it.dropped)
    unread = [d for d in dropped.items if d.reason is DropReason.UNREAD]
    assert len(unread) == it.dropped


# ------------------------------------------------------------------------- await subscribe


@pytest.mark.parametrize("callback_reader", [False, True], ids=["alone", "beside an Rx reader"])
async def test_subscribe_then_read_loses_nothing_published_in_between(
    rxmqtt_mosquitto: MosquittoBroker, callback_reader: bool, mqtt_version: int
) -> None:
    async with (
        _connect(rxmqtt_mosquitto, "pub", mqtt_version) as pub,
        _connect(rxmqtt_mosquitto, version=mqtt_version) as sub,
    ):
        if callback_reader:
            other = Recorder(sub.messages("gap/#", qos=1))
        assert await sub.subscribe("gap/#", qos=1) == 1
        await pub.wait_for(ConnectionState.CONNECTED, 5)
        for i in range(5):
            await pub.publish(f"gap/{i}", b"%d" % i, qos=1)
        await _wait_log(rxmqtt_mosquitto, f"Received PUBACK from {sub.settings.client_id}", 5)
        got = []
        async for message in sub.messages("gap/#", qos=1):
            got.append(message.payload)
            if len(got) == 6:
                break
            if len(got) == 5:
                await pub.publish("gap/live", b"live", qos=1)
        assert got == [b"0", b"1", b"2", b"3", b"4", b"live"]
        if callback_reader:
            assert [m.payload for m in other.items] == got, "the other reader got them all too"
            other.dispose()
        assert (
            rxmqtt_mosquitto.log_text().count(f"Received SUBSCRIBE from {sub.settings.client_id}")
            == 1
        )
        assert _unsubscribes(rxmqtt_mosquitto, sub) == 0, "subscribe() still holds it"
        await sub.unsubscribe("gap/#")
        await _wait_log(rxmqtt_mosquitto, f"Received UNSUBSCRIBE from {sub.settings.client_id}")


async def test_subscribe_returns_the_qos_the_broker_granted(
    rxmqtt_mosquitto_factory: BrokerFactory, mqtt_version: int
) -> None:
    broker = rxmqtt_mosquitto_factory(BrokerConfig(extra="max_qos 1\n"))
    async with _connect(broker, version=mqtt_version) as conn:
        assert await asyncio.wait_for(conn.subscribe("granted/#", qos=2), 5) == 1
        assert await asyncio.wait_for(conn.subscribe("granted/#", qos=0), 5) == 1, "held already"
        assert await asyncio.wait_for(conn.subscribe("other", qos=0), 5) == 0


async def _refusing(link: PeerLink) -> None:
    """CONNACK, then a SUBACK 0x87 (Not authorized) for a filter starting with ``denied``,
    granted QoS 1 otherwise. (Mosquitto 2.0 grants every subscription and applies its ACL on
    delivery, so it never refuses one.)"""
    link.send(connack())
    while True:
        request = await link.next_request()
        denied = request.filters[0][0].startswith("denied")
        link.send(reply(request, b"\x87" if denied else b"\x01"))
        await link.drain()


async def test_subscribe_refused_raises_with_the_reason_code() -> None:
    async with ScriptedPeer(_refusing) as peer:
        url = f"mqtt://127.0.0.1:{peer.port}?client_id=ref"
        async with Connection(url, reconnect=FAST) as conn:
            refused = rxmqtt.aiter(conn.messages("denied/b", qos=1))
            with pytest.raises(SubscribeError) as info:
                await asyncio.wait_for(conn.subscribe("denied/a", qos=1), 5)
            assert info.value.reason_code == 0x87
            assert info.value.topic_filter == "denied/a"
            assert "denied/a" not in conn._holds
            with pytest.raises(SubscribeError, match="0x87"):
                await asyncio.wait_for(anext(refused), 5)  # the loop raises it too
            assert await asyncio.wait_for(conn.subscribe("allowed/#", qos=1), 5) == 1
            assert conn.state is ConnectionState.CONNECTED


async def test_subscribe_waits_for_the_connection_and_close_ends_the_wait(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    conn = _connect(rxmqtt_mosquitto)
    conn.start()
    assert await asyncio.wait_for(conn.subscribe("early", qos=1), 5) == 1
    await conn.close()
    with pytest.raises(MqttError, match="closed"):
        await conn.subscribe("late")


# ------------------------------------------------------------------------- MQTT 5 options


async def test_no_local_skips_our_own_messages(rxmqtt_mosquitto: MosquittoBroker) -> None:
    async with _connect(rxmqtt_mosquitto, "other") as other, _connect(rxmqtt_mosquitto) as me:
        await me.subscribe("nl", qos=1, no_local=True)
        await other.wait_for(ConnectionState.CONNECTED, 5)
        it = rxmqtt.aiter(me.messages("nl", qos=1))
        await me.publish("nl", b"mine", qos=1)
        await other.publish("nl", b"theirs", qos=1)
        assert (await asyncio.wait_for(anext(it), 5)).payload == b"theirs"
        await me.publish("nl", b"mine again", qos=1)
        await other.publish("nl", b"theirs again", qos=1)
        assert (await asyncio.wait_for(anext(it), 5)).payload == b"theirs again"
        assert it.buffered == 0


async def test_retain_as_published_keeps_the_flag_on_live_messages(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    async with _connect(rxmqtt_mosquitto, "pub") as pub, _connect(rxmqtt_mosquitto) as sub:
        await sub.subscribe("rap/kept", retain_as_published=True)
        await sub.subscribe("rap/cleared")
        await pub.wait_for(ConnectionState.CONNECTED, 5)
        kept = rxmqtt.aiter(sub.messages("rap/kept"))
        cleared = rxmqtt.aiter(sub.messages("rap/cleared"))
        await pub.publish("rap/kept", b"k", qos=1, retain=True)
        await pub.publish("rap/cleared", b"c", qos=1, retain=True)
        assert (await asyncio.wait_for(anext(kept), 5)).retain is True
        assert (await asyncio.wait_for(anext(cleared), 5)).retain is False
        for topic in ("rap/kept", "rap/cleared"):
            await pub.publish(topic, b"", qos=1, retain=True)


@pytest.mark.parametrize(("handling", "retained_seen"), [(0, True), (1, True), (2, False)])
async def test_retain_handling_decides_the_retained_message_on_subscribe(
    rxmqtt_mosquitto: MosquittoBroker, handling: int, retained_seen: bool
) -> None:
    async with _connect(rxmqtt_mosquitto, "pub") as pub, _connect(rxmqtt_mosquitto) as sub:
        await pub.publish(f"rh{handling}", b"retained", qos=1, retain=True)
        await sub.subscribe(f"rh{handling}", qos=1, retain_handling=handling)
        await pub.publish(f"rh{handling}", b"live", qos=1)
        it = rxmqtt.aiter(sub.messages(f"rh{handling}", qos=1))
        payloads = [(await asyncio.wait_for(anext(it), 5)).payload]
        if payloads[0] == b"retained":
            payloads.append((await asyncio.wait_for(anext(it), 5)).payload)
        assert payloads == ([b"retained", b"live"] if retained_seen else [b"live"])
        await pub.publish(f"rh{handling}", b"", qos=1, retain=True)


async def test_different_options_on_one_filter_are_an_error_never_silently_one(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    async with _connect(rxmqtt_mosquitto) as conn:
        await conn.subscribe("opt", qos=1, no_local=True)
        with pytest.raises(ValueError, match=r"^no_local: 'opt' is already subscribed with no"):
            conn.messages("opt", no_local=False)
        with pytest.raises(ValueError, match=r"^retain_handling: 'opt' is already subscribed"):
            await conn.subscribe("opt", retain_handling=2)
        # Unset options share the live subscription, and a higher QoS is merged in.
        assert await conn.subscribe("opt", qos=2) == 2
        await conn.subscribe("shared", retain_as_published=True)
        reader = rxmqtt.aiter(conn.messages("shared"))  # unset: shares it
        await conn.publish("shared", b"s", qos=1)
        assert (await asyncio.wait_for(anext(reader), 5)).payload == b"s"
        # A stream made before the conflicting subscription existed errors when subscribed.
        late = conn.messages("late", retain_handling=1)
        await conn.subscribe("late", retain_handling=2)
        with pytest.raises(ValueError, match=r"^retain_handling: 'late' is already"):
            await asyncio.wait_for(anext(rxmqtt.aiter(late)), 5)


async def test_overlapping_filters_each_get_a_message_once(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    """Mosquitto sends one copy per matching subscription; the Subscription Identifier on each
    copy routes it to its own filter's readers only, so nobody sees a message twice."""
    async with _connect(rxmqtt_mosquitto, "pub") as pub, _connect(rxmqtt_mosquitto) as sub:
        wide = Recorder(sub.messages("ov/#", qos=1))
        narrow = Recorder(sub.messages("ov/+/c", qos=1))
        await sub.subscribe("ov/#", qos=1)
        await sub.subscribe("ov/+/c", qos=1)
        await pub.wait_for(ConnectionState.CONNECTED, 5)
        await pub.publish("ov/b/c", b"both", qos=1)
        await pub.publish("ov/end", b"end", qos=1)
        await wide.wait_for_item(lambda m: m.payload == b"end", 5)
        await narrow.wait_for_item(lambda m: m.payload == b"both", 5)
        await _wait_log(rxmqtt_mosquitto, f"Received PUBACK from {sub.settings.client_id}", 3)
        assert [m.payload for m in wide.items] == [b"both", b"end"]
        assert [m.payload for m in narrow.items] == [b"both"]
        ids = {m.properties.subscription_identifiers for m in wide.items + narrow.items}
        assert all(len(i) == 1 for i in ids), ids


# ------------------------------------------------------------------------- URL and session


async def test_a_url_is_enough(rxmqtt_mosquitto: MosquittoBroker) -> None:
    url = f"mqtt://127.0.0.1:{rxmqtt_mosquitto.port}?client_id=url-1&keep_alive=20"
    async with Connection(url, keep_alive=30) as conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        assert (conn.settings.client_id, conn.settings.keep_alive) == ("url-1", 30)
        assert (conn.settings.clean_start, conn.settings.session_expiry) == (False, 3600)


async def _session_present(broker: MosquittoBroker, client_id: str, version: int) -> bool:
    settings = ConnectionSettings(
        host=broker.host, port=broker.port, client_id=client_id, protocol_version=version
    )
    conn = Connection(settings, reconnect=FAST)
    events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
    async with conn:
        connected = await events.wait_for_item(lambda e: isinstance(e, Connected), 5)
    assert isinstance(connected, Connected)
    return connected.session_present


@pytest.mark.parametrize("named", [False, True], ids=["random id", "named"])
async def test_a_random_client_id_leaves_no_session_behind(
    rxmqtt_mosquitto: MosquittoBroker, named: bool, mqtt_version: int
) -> None:
    """Subscribe at QoS 1, close, publish: a random-id client's session is gone (nobody could
    resume it); a named client's persists with the message queued in it. (MQTT 3.1.1: Clean
    Session 1 and 0.)"""
    url = f"mqtt://127.0.0.1:{rxmqtt_mosquitto.port}?protocol_version={mqtt_version}"
    if named:
        url += f"&client_id=named-{next(_ids)}"
    async with Connection(url, reconnect=FAST) as conn:
        await conn.subscribe("session/q", qos=1)
    client_id = conn.settings.client_id
    assert conn.settings.clean_start is not named
    async with _connect(rxmqtt_mosquitto, "pub", mqtt_version) as pub:
        await pub.publish("session/q", b"while away", qos=1)
    assert await _session_present(rxmqtt_mosquitto, client_id, mqtt_version) is named


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        pytest.param(b"\x02\x0b\x05", (5,), id="one id"),
        pytest.param(b"\x04\x0b\x05\x0b\x07", (5, 7), id="two ids"),
        pytest.param(b"\x04\x0b\xff\xff\x7f", (0x1FFFFF,), id="a three-byte id"),
        pytest.param(b"\x05\x0b\x05\x01\x00\x00", None, id="with another property: paho's"),
        pytest.param(b"\x02\x0b\x00", None, id="a zero id is malformed: paho's"),
        pytest.param(b"\x03\x0b\x05", None, id="a length past the ids: paho's"),
    ],
)
def test_identifier_only_properties_are_decoded_without_paho(
    block: bytes, expected: tuple[int, ...] | None
) -> None:
    """Every message of a subscription with an identifier carries it: the receive fast path
    decodes that block itself (paho's Properties cost tens of microseconds a message)."""
    from rxmqtt.engine._paho_client import _only_identifiers

    packet = b"\x00\x01t" + block + b"payload"
    found = _only_identifiers(packet, 3)
    if expected is None:
        assert found is None
        return
    assert found is not None
    props, end = found
    assert props.subscription_identifiers == expected
    assert packet[end:] == b"payload"


async def test_async_for_from_another_loop_than_the_connections(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    """A connection on its own thread (``start_in_thread``), read and subscribed from this
    loop: values hop threads, leaving the loop unsubscribes on the connection's thread."""
    conn = Connection(_url(rxmqtt_mosquitto), reconnect=FAST)
    with conn.start_in_thread():
        assert await asyncio.wait_for(conn.subscribe("thread/#", qos=1), 10) == 1
        await asyncio.wait_for(conn.publish("thread/a", b"hop", qos=1), 10)
        async for message in conn.messages("thread/#", qos=1):
            assert message.payload == b"hop"
            break
        await conn.unsubscribe("thread/#")
        await _wait_log(rxmqtt_mosquitto, f"Received UNSUBSCRIBE from {conn.settings.client_id}")


async def test_unsubscribe_before_the_grant_ends_the_wait_with_why() -> None:
    """Offline (never started), ``subscribe()`` waits; ``unsubscribe()`` releases the filter
    and the wait ends with an error saying so, never a hang."""
    conn = Connection("mqtt://127.0.0.1:1?client_id=offline", reconnect=FAST)
    waiting = asyncio.ensure_future(conn.subscribe("pending/#", qos=1))
    await asyncio.sleep(0)
    assert not waiting.done()
    await conn.unsubscribe("pending/#")
    with pytest.raises(MqttError, match=r"unsubscribe\('pending/#'\) came before the broker"):
        await asyncio.wait_for(waiting, 5)
    assert conn._subscriptions.get("pending/#") is None
    await conn.close()
