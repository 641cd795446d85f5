"""The edges of a session (issue 16): poison publishes, honest QoS 2 outcomes, server
redirection and ending the session on close.

Each edge is played by a scripted raw MQTT 5 peer (``rxmqtt.testing._peer``), which can answer
exactly as a broker would at that edge, and against Mosquitto where Mosquitto shows it.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest

from rxmqtt import (
    Connected,
    ConnectFailed,
    Connection,
    ConnectionSettings,
    ConnectionState,
    Disconnected,
    DroppedMessage,
    DropReason,
    GaveUp,
    LifecycleEvent,
    Message,
    MessageMayBeLostError,
    PublishError,
    PublishProperties,
    PublishRefusedError,
    PublishResult,
    TlsSettings,
)
from rxmqtt.testing import BrokerConfig, FaultProxy, MosquittoBroker
from rxmqtt.testing._peer import (
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    PeerLink,
    Script,
    ScriptedPeer,
    ack,
    connack,
    disconnect,
    maximum_qos,
    packet_id_of,
    parse_publish,
    properties,
    retain_available,
    server_reference,
)
from rxmqtt.testing.certs import TlsFiles
from rxmqtt.testing.plugin import BrokerFactory, ProxyFactory
from rxmqtt.testing.recorder import Recorder
from tests._helpers import FAST_NO_JITTER, named_settings, until_delivered

DEADLINE = 15.0


def settings(port: int, **overrides: object) -> ConnectionSettings:
    """A named client (its session persists across reconnects)."""
    return named_settings(port, "edges", **overrides)


async def outcome(result: object) -> PublishResult | BaseException:
    """The publish's result, or the error it ended with (within the deadline)."""
    try:
        return await asyncio.wait_for(result, DEADLINE)  # type: ignore[arg-type]
    except (PublishError, TimeoutError) as exc:
        return exc


def refused(result: object, code: int) -> PublishRefusedError:
    """``result`` is a ``PublishRefusedError`` with ``code``."""
    assert isinstance(result, PublishRefusedError), result
    assert result.reason_code == code, result
    return result


# ----------------------------------------------------------------------------- poison publishes


def refusing(
    bad_topic: str, code: int, *, hold_acks_on_first: frozenset[str] = frozenset()
) -> tuple[Script, list[tuple[int, str]]]:
    """A broker that closes the connection with ``code`` whenever it reads a PUBLISH to a topic
    starting with ``bad_topic`` (as one does for a payload format or retain it refuses) and
    acknowledges every other QoS 1 PUBLISH, except the topics in ``hold_acks_on_first`` on the
    first connection (a broker slow to acknowledge: the innocent one must not be blamed)."""
    seen: list[tuple[int, str]] = []

    async def script(link: PeerLink) -> None:
        link.send(connack(session_present=link.number > 1))
        while True:
            pub = parse_publish(await link.read_until(PUBLISH))
            seen.append((link.number, pub.topic))
            if pub.topic.startswith(bad_topic):
                link.send(disconnect(code))
                await link.close()
                return
            if pub.qos == 1 and not (link.number == 1 and pub.topic in hold_acks_on_first):
                link.send(ack(PUBACK, pub.packet_id))

    return script, seen


async def outcomes_of(script: Script, topics: tuple[str, ...]) -> tuple[list[object], int]:
    """Publish one QoS 1 message to each of ``topics`` at once to a peer playing ``script``:
    the outcomes in order, and how many connections that took."""
    async with ScriptedPeer(script) as peer:
        conn = Connection(settings(peer.port), reconnect=FAST_NO_JITTER)
        async with conn:
            await conn.wait_for(ConnectionState.CONNECTED, DEADLINE)
            results = [conn.publish(topic, b".", qos=1) for topic in topics]
            outcomes = list(await asyncio.gather(*(outcome(r) for r in results)))
    return outcomes, peer.connections


@pytest.mark.parametrize("code", [0x99, 0x90, 0x95, 0x9A, 0x9B])
async def test_a_publish_the_broker_disconnects_over_is_refused_and_the_rest_goes_out(
    code: int,
) -> None:
    script, seen = refusing("poison", code)
    async with ScriptedPeer(script) as peer:
        conn = Connection(settings(peer.port), reconnect=FAST_NO_JITTER)
        dropped: Recorder[DroppedMessage] = Recorder(conn.dropped)
        async with conn:
            await conn.wait_for(ConnectionState.CONNECTED, DEADLINE)
            bad = conn.publish("poison", b"x", qos=1)
            good = conn.publish("after", b"y", qos=1)
            bad_outcome, good_outcome = await asyncio.gather(outcome(bad), outcome(good))
            later = await outcome(conn.publish("later", b"z", qos=1))
            assert conn.state is ConnectionState.CONNECTED

    assert "closed the connection over this publish 2 times" in str(refused(bad_outcome, code))
    assert isinstance(good_outcome, PublishResult), good_outcome
    assert isinstance(later, PublishResult), later
    assert [(d.message.topic, d.reason) for d in dropped.items] == [("poison", DropReason.REFUSED)]
    # The second identical refusal is enough: two tries, then the next connection is clean.
    assert [topic for _, topic in seen].count("poison") == 2, seen
    assert peer.connections == 3, seen


async def test_an_innocent_publish_the_broker_was_slow_to_ack_is_not_blamed() -> None:
    """The oldest unacknowledged publish is only a suspect: the next connection sends the QoS 1
    publishes one at a time, so the refusal lands on the one actually in flight."""
    script, seen = refusing("poison", 0x99, hold_acks_on_first=frozenset({"slow"}))
    (slow, bad, after), connections = await outcomes_of(script, ("slow", "poison", "next"))
    assert isinstance(slow, PublishResult), (slow, seen)
    refused(bad, 0x99)
    assert isinstance(after, PublishResult), (after, seen)
    # While isolating, nothing went out behind the suspect on the same connection.
    for number in range(2, connections):
        sent = [topic for n, topic in seen if n == number]
        assert sent[-1] == "poison", seen


async def test_two_poison_publishes_are_each_given_up_and_the_good_one_goes_out() -> None:
    script, seen = refusing("poison", 0x99)
    (first, second, good), connections = await outcomes_of(script, ("poison/1", "poison/2", "good"))
    refused(first, 0x99)
    refused(second, 0x99)
    assert isinstance(good, PublishResult), (good, seen)
    # Each is isolated and refused twice; one connection each, then a clean one.
    assert [topic for _, topic in seen].count("poison/2") == 2, seen
    assert connections == 5, seen


async def test_publishes_flow_freely_again_once_the_poison_is_given_up() -> None:
    """Sending one at a time is for finding the culprit only: the connection after it is given
    up must not keep it (this broker acknowledges nothing until it has read three PUBLISHes)."""

    async def script(link: PeerLink) -> None:
        link.send(connack(session_present=link.number > 1))
        if link.number <= 2:
            await link.read_until(PUBLISH)
            link.send(disconnect(0x99))
            await link.close()
            return
        batch = [parse_publish(await link.read_until(PUBLISH)) for _ in range(3)]
        for pub in batch:
            link.send(ack(PUBACK, pub.packet_id))
        await link.serve()

    async with ScriptedPeer(script) as peer:
        conn = Connection(settings(peer.port), reconnect=FAST_NO_JITTER)
        async with conn:
            await conn.wait_for(ConnectionState.CONNECTED, DEADLINE)
            refused(await outcome(conn.publish("poison", b"x", qos=1)), 0x99)
            results = [conn.publish(f"free/{n}", b".", qos=1) for n in range(3)]
            done = await asyncio.gather(*(outcome(r) for r in results))
    assert all(isinstance(r, PublishResult) for r in done), done


async def test_what_the_connack_forbids_is_refused_at_publish_and_a_queued_one_never_sent() -> None:
    topics: list[str] = []

    async def script(link: PeerLink) -> None:
        link.send(connack(props=properties(retain_available(0), maximum_qos(1))))
        while True:
            pub = parse_publish(await link.read_until(PUBLISH))
            topics.append(pub.topic)
            if pub.qos:
                link.send(ack(PUBACK, pub.packet_id))

    async with ScriptedPeer(script) as peer:
        conn = Connection(settings(peer.port), reconnect=FAST_NO_JITTER)
        dropped: Recorder[DroppedMessage] = Recorder(conn.dropped)
        queued = conn.publish("queued/retained", b"r", qos=1, retain=True)  # before the CONNACK
        async with conn:
            await conn.wait_for(ConnectionState.CONNECTED, DEADLINE)
            never_sent = await outcome(queued)
            with pytest.raises(ValueError, match=r"^retain: .*Retain Available 0"):
                conn.publish("now/retained", b"r", qos=1, retain=True)
            with pytest.raises(
                ValueError, match=r"^qos: QoS 2 is above the broker's Maximum QoS 1"
            ):
                conn.publish("now/qos2", b"q", qos=2)
            fine = await outcome(conn.publish("now/fine", b"f", qos=1))
    assert "not sent" in str(refused(never_sent, 0x9A))
    assert isinstance(fine, PublishResult), fine
    assert topics == ["now/fine"]
    assert [(d.message.topic, d.reason) for d in dropped.items] == [
        ("queued/retained", DropReason.REFUSED)
    ]


def test_a_payload_declared_utf8_that_is_not_is_refused_at_publish() -> None:
    conn = Connection(settings(1883))
    with pytest.raises(ValueError, match=r"^payload: not valid UTF-8 .*payload_format_indicator"):
        conn.publish("t", b"\xff\xfe", properties=PublishProperties(payload_format_indicator=1))
    with pytest.raises(ValueError, match=r"properties\.response_topic"):
        conn.publish("t", b"x", properties=PublishProperties(response_topic="reply/+"))
    conn.publish("t", "ünïcode", properties=PublishProperties(payload_format_indicator=1))


@pytest.mark.broker
async def test_mosquitto_retain_not_available_refuses_at_publish_and_drain(
    rxmqtt_mosquitto_factory: BrokerFactory,
) -> None:
    broker = rxmqtt_mosquitto_factory(BrokerConfig(retain_available=False, extra="max_qos 1"))
    conn = Connection(settings(broker.port, host=broker.host), reconnect=FAST_NO_JITTER)
    events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
    queued = conn.publish("m/retained", b"r", qos=1, retain=True)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, DEADLINE)
        never_sent = await outcome(queued)
        with pytest.raises(ValueError, match="Retain Available 0"):
            conn.publish("m/retained", b"r", retain=True)
        with pytest.raises(ValueError, match="Maximum QoS 1"):
            conn.publish("m/qos2", b"r", qos=2)
        fine = await outcome(conn.publish("m/fine", b"f", qos=1))
    refused(never_sent, 0x9A)
    assert isinstance(fine, PublishResult), fine
    # Refused here, never sent: Mosquitto had no retained PUBLISH to disconnect over.
    assert not any(isinstance(e, Disconnected) for e in events.items[:-2]), events.items


@pytest.mark.broker
async def test_mosquitto_a_resent_publish_the_new_broker_refuses_ends_and_the_rest_delivers(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_fault_proxy_factory: ProxyFactory
) -> None:
    """A retained QoS 1 publish is in flight when the link dies; the broker that answers the
    reconnect does not support retain, and MQTT makes the client re-send the publish as it was:
    Mosquitto closes the connection with 0x9A each time. It must end, and not block the rest."""
    first = rxmqtt_mosquitto_factory()
    strict = rxmqtt_mosquitto_factory(BrokerConfig(retain_available=False))
    proxy: FaultProxy = rxmqtt_fault_proxy_factory(first)
    conn = Connection(settings(proxy.port, host=proxy.host), reconnect=FAST_NO_JITTER)
    watcher = Connection(settings(strict.port, host=strict.host), reconnect=FAST_NO_JITTER)
    events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
    async with conn, watcher:
        got: Recorder[Message] = Recorder(watcher.messages("edge/#", qos=1))
        await conn.wait_for(ConnectionState.CONNECTED, DEADLINE)
        await watcher.wait_for(ConnectionState.CONNECTED, DEADLINE)
        await until_delivered(watcher, got, "edge/probe")
        proxy.blackhole()
        # Both go into the black hole (or, unwritten, wait in paho): unacknowledged either way.
        retained = conn.publish("edge/retained", b"r", qos=1, retain=True)
        plain = conn.publish("edge/plain", b"p", qos=1)
        proxy.retarget(strict.host, strict.port)
        proxy.pass_through()
        proxy.reset()
        resent, delivered = await asyncio.gather(outcome(retained), outcome(plain))
        await got.wait_for_item(lambda m: m.topic == "edge/plain", DEADLINE, "edge/plain")
    refused(resent, 0x9A)
    assert isinstance(delivered, PublishResult), delivered
    refusals = [
        e for e in events.items if isinstance(e, Disconnected) and e.disconnect.reason_code == 0x9A
    ]
    assert len(refusals) == 2, events.items
    assert [m.topic for m in got.items if m.topic != "edge/probe"] == ["edge/plain"]


# ----------------------------------------------------------------------------- QoS 2 outcomes


async def test_a_pubcomp_with_a_failure_code_is_not_a_success() -> None:
    async def script(link: PeerLink) -> None:
        link.send(connack())
        pub = parse_publish(await link.read_until(PUBLISH))
        link.send(ack(PUBREC, pub.packet_id))
        await link.read_until(PUBREL)
        link.send(ack(PUBCOMP, pub.packet_id, 0x92))
        await link.serve()

    async with (
        ScriptedPeer(script) as peer,
        Connection(settings(peer.port), reconnect=FAST_NO_JITTER) as c,
    ):
        await c.wait_for(ConnectionState.CONNECTED, DEADLINE)
        result = await outcome(c.publish("q2/x", b"x", qos=2))
    assert isinstance(result, MessageMayBeLostError), result
    assert result.reason_code == 0x92
    assert "may be lost" in str(result)
    assert "PUBCOMP" in str(result)


async def test_a_pubrel_owed_when_the_session_is_lost_ends_as_may_be_lost_and_is_not_sent() -> None:
    pubrels_after_loss: list[bytes] = []
    acked_later: list[str] = []

    async def script(link: PeerLink) -> None:
        if link.number == 1:
            link.send(connack())
            pub = parse_publish(await link.read_until(PUBLISH))
            link.send(ack(PUBREC, pub.packet_id))
            await link.read_until(PUBREL)
            await link.close()  # the link dies before the PUBCOMP
            return
        link.send(connack(session_present=False))  # ... and the broker lost the session
        while True:
            raw = await link.read()
            if raw[0] >> 4 == PUBREL:
                pubrels_after_loss.append(raw)
                link.send(ack(PUBCOMP, packet_id_of(raw), 0x92))
            elif raw[0] >> 4 == PUBLISH:
                pub = parse_publish(raw)
                acked_later.append(pub.topic)
                link.send(ack(PUBACK, pub.packet_id))

    async with (
        ScriptedPeer(script) as peer,
        Connection(settings(peer.port), reconnect=FAST_NO_JITTER) as c,
    ):
        await c.wait_for(ConnectionState.CONNECTED, DEADLINE)
        result = await outcome(c.publish("q2/owed", b"x", qos=2))
        after = await outcome(c.publish("q2/after", b"y", qos=1))
    assert isinstance(result, MessageMayBeLostError), result
    assert "session" in str(result)
    assert "may be lost" in str(result)
    assert isinstance(after, PublishResult), after
    assert pubrels_after_loss == [], "a PUBREL was sent into a session the broker no longer has"
    assert acked_later == ["q2/after"]


# ----------------------------------------------------------------------------- redirection


def redirecting(kind: str, code: int, reference: str | None) -> Script:
    """A broker that sends the client away: refusing its CONNACK (``kind="connack"``) or with a
    DISCONNECT right after accepting it, with or without a Server Reference."""
    props = properties(server_reference(reference)) if reference is not None else b"\x00"

    async def script(link: PeerLink) -> None:
        if kind == "connack":
            link.send(connack(code, props=props))
        else:
            link.send(connack())
            link.send(disconnect(code, props))
        await link.close()

    return script


@pytest.mark.broker
@pytest.mark.parametrize("kind", ["connack", "disconnect"])
@pytest.mark.parametrize("code", [0x9C, 0x9D])
async def test_a_server_reference_is_followed(
    kind: str, code: int, rxmqtt_mosquitto: MosquittoBroker
) -> None:
    target = f"{rxmqtt_mosquitto.host}:{rxmqtt_mosquitto.port}"
    async with ScriptedPeer(redirecting(kind, code, target)) as peer:
        conn = Connection(settings(peer.port), reconnect=FAST_NO_JITTER)
        events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
        async with conn:
            connected = await events.wait_for_item(
                lambda e: isinstance(e, Connected) and e.endpoint == target, DEADLINE, target
            )
            echo: Recorder[Message] = Recorder(conn.messages("moved/#", qos=1))
            await until_delivered(conn, echo, "moved/here")
    assert isinstance(connected, Connected)
    sent_away = next(e for e in events.items if isinstance(e, ConnectFailed | Disconnected))
    assert sent_away.disconnect.reason_code == code
    assert sent_away.disconnect.server_reference == target
    assert not sent_away.disconnect.fatal
    assert not any(isinstance(e, GaveUp) for e in events.items)


@pytest.mark.parametrize("kind", ["connack", "disconnect"])
@pytest.mark.parametrize("code", [0x9C, 0x9D])
async def test_without_a_server_reference_a_redirection_is_fatal(kind: str, code: int) -> None:
    async with ScriptedPeer(redirecting(kind, code, None)) as peer:
        conn = Connection(settings(peer.port), reconnect=FAST_NO_JITTER)
        events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
        async with conn:
            await conn.wait_for(ConnectionState.FAILED, DEADLINE)
    assert peer.connections == 1, events.items
    gave_up = next(e for e in events.items if isinstance(e, GaveUp))
    assert gave_up.disconnect is not None
    assert gave_up.disconnect.reason_code == code


async def test_a_redirection_loop_ends_after_a_bounded_number_of_hops() -> None:
    port_holder: list[int] = []

    async def script(link: PeerLink) -> None:  # refers the client to itself, forever
        link.send(connack(0x9C, props=properties(server_reference(f"127.0.0.1:{port_holder[0]}"))))
        await link.close()

    async with ScriptedPeer(script) as peer:
        port_holder.append(peer.port)
        conn = Connection(settings(peer.port), reconnect=FAST_NO_JITTER)
        events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
        async with conn:
            await conn.wait_for(ConnectionState.FAILED, DEADLINE)
    gave_up = next(e for e in events.items if isinstance(e, GaveUp))
    assert "redirected 5 times in a row" in gave_up.reason, gave_up
    assert peer.connections == 6


def _server_tls(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.server_cert, files.server_key)
    return context


@pytest.mark.broker
@pytest.mark.parametrize("wrong_host", [False, True], ids=["verified", "wrong-host"])
async def test_a_redirection_gets_the_same_tls_checks(
    wrong_host: bool, rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles
) -> None:
    broker = rxmqtt_mosquitto_factory(BrokerConfig(tls=rxmqtt_tls_files, tls_wrong_host=wrong_host))
    target = f"{broker.host}:{broker.port}"
    peer = ScriptedPeer(redirecting("connack", 0x9D, target), tls=_server_tls(rxmqtt_tls_files))
    async with peer:
        tls = TlsSettings(ca_file=rxmqtt_tls_files.ca_file)
        conn = Connection(settings(peer.port, tls=tls), reconnect=FAST_NO_JITTER)
        events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
        async with conn:
            if not wrong_host:
                await events.wait_for_item(
                    lambda e: isinstance(e, Connected) and e.endpoint == target, DEADLINE, target
                )
                return
            await conn.wait_for(ConnectionState.FAILED, DEADLINE)
    failures = [e for e in events.items if isinstance(e, ConnectFailed)]
    assert failures[-1].disconnect.fatal, failures
    assert "certificate" in failures[-1].reason.lower(), failures


# ----------------------------------------------------------------------------- close


@pytest.mark.broker
@pytest.mark.parametrize("end_session", [False, True])
async def test_close_keeps_the_session_unless_asked_to_end_it(
    end_session: bool, rxmqtt_mosquitto: MosquittoBroker
) -> None:
    named = settings(
        rxmqtt_mosquitto.port, host=rxmqtt_mosquitto.host, session_expiry=300, clean_start=False
    )
    first = Connection(named, reconnect=FAST_NO_JITTER)
    async with first:
        await first.wait_for(ConnectionState.CONNECTED, DEADLINE)
        await first.close(end_session=end_session)
    again = Connection(named, reconnect=FAST_NO_JITTER)
    events: Recorder[LifecycleEvent] = Recorder(again.lifecycle)
    async with again:
        connected = await events.wait_for_item(lambda e: isinstance(e, Connected), DEADLINE)
    assert isinstance(connected, Connected)
    assert connected.session_present is (not end_session)


async def test_close_end_session_sends_session_expiry_zero() -> None:
    disconnects: list[bytes] = []

    async def script(link: PeerLink) -> None:
        link.send(connack())
        disconnects.append(await link.read())

    async with ScriptedPeer(script) as peer:
        for end_session in (False, True):
            conn = Connection(settings(peer.port, session_expiry=300), reconnect=FAST_NO_JITTER)
            conn.start()
            await conn.wait_for(ConnectionState.CONNECTED, DEADLINE)
            await conn.close(end_session=end_session)
    keep, end = disconnects
    assert keep == bytes([0xE0, 0x00]), keep  # normal disconnection, no properties
    assert end == bytes([0xE0, 0x07, 0x00, 0x05, 0x11, 0, 0, 0, 0]), end  # Session Expiry 0
