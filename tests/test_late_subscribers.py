"""No message arrives into nothing: what a resumed session delivers right after CONNACK reaches a
``messages()`` subscriber created after ``start()`` (within the grace period), and what nobody
takes is on ``unmatched_messages``, or on ``dropped`` while nobody observes that.

A scripted raw peer delivers before the app subscribes and counts the client's PUBACKs, so each
test knows the messages were received (and acknowledged) before its subscriber existed; then the
README's pattern against Mosquitto with a persistent session.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from rxmqtt import (
    Connection,
    ConnectionSettings,
    ConnectionState,
    DroppedMessage,
    DropReason,
    GracePeriod,
    Message,
)
from rxmqtt.testing import MosquittoBroker
from rxmqtt.testing._peer import (
    PeerLink,
    Script,
    ScriptedPeer,
    connack,
    message_expiry,
    properties,
    publish,
)
from rxmqtt.testing.recorder import Recorder
from tests._helpers import FAST_NO_JITTER

DEADLINE = 10.0
_ids = itertools.count()


def _settings(port: int, client_id: str | None = None) -> ConnectionSettings:
    return ConnectionSettings(
        host="127.0.0.1",
        port=port,
        client_id=client_id or f"late-{next(_ids)}",
        clean_start=False,
        session_expiry=3600,
    )


def _delivers_on_connack(*topics: str, then_more: asyncio.Event | None = None) -> Script:
    """A resumed session that delivers one QoS 1 message per topic right after CONNACK (and
    ``late/more`` once ``then_more`` is set)."""

    async def script(link: PeerLink) -> None:
        link.send(connack(session_present=True))
        for number, topic in enumerate(topics, 1):
            link.send(publish(topic, str(number).encode(), qos=1, packet_id=number))
        if then_more is None:
            await link.serve()
            return
        serving = asyncio.ensure_future(link.serve())
        await then_more.wait()
        link.send(publish("late/more", b"more", qos=1, packet_id=99))
        await serving

    return script


async def test_a_subscriber_created_after_delivery_gets_what_the_session_queued_in_order() -> None:
    topics = ("late/a", "other/x", "late/b", "late/c")
    async with ScriptedPeer(_delivers_on_connack(*topics)) as peer:
        conn = Connection(_settings(peer.port), reconnect=FAST_NO_JITTER)
        dropped = Recorder(conn.dropped)
        async with conn:
            await peer.wait_pubacks(len(topics), DEADLINE)  # received and acknowledged
            got = Recorder(conn.messages("late/#", qos=1))
            other = Recorder(conn.messages("other/#", qos=1))
            assert [(m.topic, m.payload) for m in got.items] == [
                ("late/a", b"1"),
                ("late/b", b"3"),
                ("late/c", b"4"),
            ], "handed over at subscribe, in arrival order"
            assert [m.topic for m in other.items] == ["other/x"]
            again = Recorder(conn.messages("late/#", qos=1))
            assert again.items == [], "each kept message is handed out once"
    assert dropped.items == []


async def test_kept_messages_come_before_newer_ones() -> None:
    more = asyncio.Event()
    script = _delivers_on_connack("late/1", "late/2", then_more=more)
    async with (
        ScriptedPeer(script) as peer,
        Connection(_settings(peer.port), reconnect=FAST_NO_JITTER) as conn,
    ):
        await peer.wait_pubacks(2, DEADLINE)
        got = Recorder(conn.messages("late/#", qos=1))
        more.set()
        await got.wait_for_count(3, DEADLINE)
    assert [m.topic for m in got.items] == ["late/1", "late/2", "late/more"]


@pytest.mark.parametrize("observed", [True, False], ids=["observed", "nobody-observes"])
async def test_unclaimed_messages_leave_the_grace_buffer_to_unmatched_or_dropped(
    observed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rxmqtt.connection")
    more = asyncio.Event()
    script = _delivers_on_connack("late/1", "late/2", then_more=more)
    async with ScriptedPeer(script) as peer:
        conn = Connection(
            _settings(peer.port), reconnect=FAST_NO_JITTER, grace_period=GracePeriod(seconds=0.3)
        )
        unmatched = Recorder(conn.unmatched_messages) if observed else None
        dropped = Recorder(conn.dropped)
        async with conn:
            await peer.wait_pubacks(2, DEADLINE)
            # The grace period ends (its timer fires) with nobody having claimed them.
            if unmatched is not None:
                await unmatched.wait_for_count(2, DEADLINE)
            else:
                await dropped.wait_for_count(2, DEADLINE)
            got = Recorder(conn.messages("late/#", qos=1))
            more.set()
            await got.wait_for_count(1, DEADLINE)
    assert [m.topic for m in got.items] == ["late/more"], "expired ones are not handed out"
    if unmatched is not None:
        assert [m.topic for m in unmatched.items] == ["late/1", "late/2"]
        assert dropped.items == []
    else:
        assert [(d.message.topic, d.reason) for d in dropped.items] == [
            ("late/1", DropReason.UNMATCHED),
            ("late/2", DropReason.UNMATCHED),
        ]
    (record,) = [r for r in caplog.records if "matched no messages() subscription" in r.message]
    assert record.levelno == (logging.INFO if observed else logging.WARNING)
    assert "'late/1'" in record.message


async def test_without_a_grace_period_an_unmatched_message_is_reported_at_once() -> None:
    async with ScriptedPeer(_delivers_on_connack("nobody/1")) as peer:
        conn = Connection(
            _settings(peer.port), reconnect=FAST_NO_JITTER, grace_period=GracePeriod(seconds=0)
        )
        dropped = Recorder(conn.dropped)
        async with conn:
            first = await dropped.wait_for_count(1, DEADLINE)
    assert first == [
        DroppedMessage(Message("nobody/1", b"1", qos=1), DropReason.UNMATCHED, first[0].at)
    ]


async def test_a_flood_of_unmatched_messages_is_one_warning_and_every_message_on_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="rxmqtt.connection")
    topics = [f"stale/{n}" for n in range(50)]
    async with ScriptedPeer(_delivers_on_connack(*topics)) as peer:
        conn = Connection(
            _settings(peer.port), reconnect=FAST_NO_JITTER, grace_period=GracePeriod(seconds=0)
        )
        dropped = Recorder(conn.dropped)
        async with conn:
            await dropped.wait_for_count(len(topics), DEADLINE)
    assert [d.message.topic for d in dropped.items] == topics
    lines = [r for r in caplog.records if "matched no messages() subscription" in r.message]
    assert [r.levelno for r in lines] == [logging.WARNING] + [logging.DEBUG] * (len(topics) - 1)


async def test_messages_still_kept_at_close_are_accounted_for() -> None:
    async with ScriptedPeer(_delivers_on_connack("late/1")) as peer:
        conn = Connection(_settings(peer.port), reconnect=FAST_NO_JITTER)
        unmatched = Recorder(conn.unmatched_messages)
        async with conn:
            await peer.wait_pubacks(1, DEADLINE)
            assert unmatched.items == [], "kept for a late subscriber"
    assert [m.topic for m in unmatched.items] == ["late/1"]
    assert unmatched.completed


async def test_a_kept_message_whose_own_expiry_passed_is_dropped_as_expired() -> None:
    async def script(link: PeerLink) -> None:
        link.send(connack(session_present=True))
        link.send(
            publish("cmd/stale", b"", qos=1, packet_id=1, props=properties(message_expiry(1)))
        )
        link.send(
            publish("cmd/fresh", b"", qos=1, packet_id=2, props=properties(message_expiry(60)))
        )
        await link.serve()

    async with ScriptedPeer(script) as peer:
        conn = Connection(_settings(peer.port), reconnect=FAST_NO_JITTER)
        dropped = Recorder(conn.dropped)
        loop = asyncio.get_running_loop()
        async with conn:
            started = loop.time()  # before the messages arrived
            await peer.wait_pubacks(2, DEADLINE)
            await asyncio.sleep(1.2)  # no event to await: time itself must pass the 1 s expiry
            got = Recorder(conn.messages("cmd/#", qos=1))
            kept_at_most = loop.time() - started
    assert [(d.message.topic, d.reason) for d in dropped.items] == [
        ("cmd/stale", DropReason.EXPIRED)
    ]
    (fresh,) = got.items
    assert fresh.topic == "cmd/fresh"
    interval = fresh.properties.message_expiry_interval
    assert interval is not None
    assert 60 - kept_at_most <= interval <= 59, "60 s less the time it was kept, rounded up"


def test_grace_period_argument_is_checked() -> None:
    with pytest.raises(TypeError, match="grace_period: must be a GracePeriod, got float"):
        Connection(ConnectionSettings(host="127.0.0.1"), grace_period=5.0)


# ---------------------------------------------------------------- against Mosquitto


def _received_pubacks(broker: MosquittoBroker, client_id: str) -> int:
    return broker.log_text().count(f"Received PUBACK from {client_id} ")


@pytest.mark.broker
async def test_readme_pattern_on_a_resumed_session_loses_nothing_published_while_down(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    """The app subscribes inside ``async with`` after it is connected and after Mosquitto has
    delivered (and the client acknowledged) everything queued while it was down."""
    client_id = f"late-mq-{next(_ids)}"
    port = rxmqtt_mosquitto.port
    async with Connection(_settings(port, client_id), reconnect=FAST_NO_JITTER) as app:
        probe = Recorder(app.messages("late/#", qos=1))
        async with Connection(_settings(port), reconnect=FAST_NO_JITTER) as pub:
            for _ in range(100):  # until the subscription is live
                await pub.publish("late/probe", b"", qos=1)
                try:
                    await probe.wait_for_count(1, 0.2)
                    break
                except TimeoutError:
                    continue
    await_count = 25
    async with Connection(_settings(port), reconnect=FAST_NO_JITTER) as pub:
        for number in range(await_count):
            await pub.publish(f"late/{number}", str(number).encode(), qos=1)
    before = _received_pubacks(rxmqtt_mosquitto, client_id)
    restarted = Connection(_settings(port, client_id), reconnect=FAST_NO_JITTER)
    dropped = Recorder(restarted.dropped)
    async with restarted:
        await restarted.wait_for(ConnectionState.CONNECTED, DEADLINE)
        for _ in range(1000):  # Mosquitto's log says the client acknowledged them all
            if _received_pubacks(rxmqtt_mosquitto, client_id) - before >= await_count:
                break
            await asyncio.sleep(0.01)
        assert _received_pubacks(rxmqtt_mosquitto, client_id) - before == await_count
        got = Recorder(restarted.messages("late/#", qos=1))
        await got.wait_for_count(await_count, DEADLINE)
    assert [m.payload for m in got.items] == [str(n).encode() for n in range(await_count)]
    assert dropped.items == []
