"""MQTT 3.1.1 as a choice (``protocol_version=4``): what it refuses, how its sessions and refusals
map onto rxmqtt's MQTT 5 vocabulary, and the path against a scripted peer and a real broker that
speaks nothing but 3.1.1 (amqtt). The core connection tests run on both versions elsewhere (the
``mqtt_version`` fixture in test_connection, test_reconnect and test_streams)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rxmqtt import (
    Backoff,
    ConnectFailed,
    Connection,
    ConnectionSettings,
    ConnectionState,
    Disconnect,
    DisconnectSource,
    Jitter,
    PublishProperties,
    ReconnectPolicy,
    Will,
)
from rxmqtt.binders import TelemetrySender
from rxmqtt.policies import V311_CONNACK_CODES, is_fatal_reason_code, v311_connack_reason_code
from rxmqtt.testing._amqtt import AmqttBroker, amqtt_available
from rxmqtt.testing._peer import PeerLink, ScriptedPeer
from rxmqtt.testing._raw import mqtt_str, packet
from rxmqtt.testing.recorder import Recorder
from tests._helpers import FAST

_ids = itertools.count()


def _v311(**overrides: Any) -> ConnectionSettings:
    return ConnectionSettings(protocol_version=4, **overrides)


# ------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        (3, ValueError, "protocol_version: must be 5 (MQTT 5) or 4 (MQTT 3.1.1), got 3"),
        (6, ValueError, "protocol_version: must be 5 (MQTT 5) or 4 (MQTT 3.1.1), got 6"),
        ("4", TypeError, "protocol_version: must be an int (5 or 4), got str"),
        (True, TypeError, "protocol_version: must be an int (5 or 4), got bool"),
    ],
)
def test_protocol_version_is_checked(value: object, error: type[Exception], text: str) -> None:
    with pytest.raises(error) as info:
        ConnectionSettings(protocol_version=value)  # type: ignore[arg-type]
    assert str(info.value) == text


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"session_expiry": 60}, "session_expiry"),
        ({"client_id": "x", "session_expiry": 0}, "session_expiry"),
        ({"receive_maximum": 10}, "receive_maximum"),
        ({"maximum_packet_size": 1000}, "maximum_packet_size"),
        ({"auth_method": "K8S-SAT", "auth_data": b"token"}, "auth_method"),
        ({"will": Will("w", delay_interval=5)}, "will.delay_interval"),
        (
            {"will": Will("w", properties=PublishProperties(user_properties=(("k", "v"),)))},
            "will.properties.user_properties",
        ),
        (
            {"will": Will("w", properties=PublishProperties(content_type="text/plain"))},
            "will.properties.content_type",
        ),
    ],
)
def test_what_only_mqtt5_can_say_is_refused_naming_it(
    overrides: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=r"needs MQTT 5 \(protocol_version=5\)") as info:
        _v311(**overrides)
    assert str(info.value).startswith(f"{named}: ")
    ConnectionSettings(**overrides)  # the same settings are fine for MQTT 5


def test_the_session_is_one_clean_session_flag() -> None:
    unnamed, named = _v311(), _v311(client_id="dev-1")
    assert (unnamed.clean_start, unnamed.session_expiry) == (True, 0)
    assert (named.clean_start, named.session_expiry) == (False, 0xFFFFFFFF)
    fresh = _v311(client_id="dev-1", clean_start=True)
    assert fresh.session_expiry == 0, "Clean Session 1 ends the session with the connection"
    assert _v311(client_id="dev-1", session_expiry=0xFFFFFFFF) == named, "the mapped value is ok"
    assert dataclasses.replace(named, keep_alive=5).session_expiry == 0xFFFFFFFF
    assert "protocol_version=4" in repr(named)


def test_urls_choose_mqtt_311_by_scheme_or_parameter() -> None:
    plain = ConnectionSettings.from_url("mqttv311://h?client_id=a")
    assert (plain.protocol_version, plain.port, plain.tls) == (4, 1883, None)
    tls = ConnectionSettings.from_url("mqttv311s://h")
    assert (tls.protocol_version, tls.port, tls.tls is not None) == (4, 8883, True)
    assert ConnectionSettings.from_url("mqtt://h?protocol_version=4").protocol_version == 4
    assert ConnectionSettings.from_url("mqtts://h?protocol_version=5").protocol_version == 5
    assert ConnectionSettings.from_url("mqtt://h").protocol_version == 5
    with pytest.raises(ValueError, match="'protocol_version': 5 contradicts the scheme"):
        ConnectionSettings.from_url("mqttv311://h?protocol_version=5")
    with pytest.raises(ValueError, match=r"'protocol_version': must be 5 .* got 3"):
        ConnectionSettings.from_url("mqtt://h?protocol_version=3")
    with pytest.raises(ValueError, match=r"^session_expiry: needs MQTT 5"):
        ConnectionSettings.from_url("mqttv311://h?session_expiry=60")


def test_the_environment_chooses_mqtt_311(tmp_path: Path) -> None:
    env = {"AIO_BROKER_HOSTNAME": "h", "AIO_MQTT_USE_TLS": "false"}
    chosen = ConnectionSettings.from_env({**env, "AIO_MQTT_PROTOCOL_VERSION": "4"})
    assert chosen.protocol_version == 4
    assert ConnectionSettings.from_env(env).protocol_version == 5
    with pytest.raises(ValueError, match=r"^AIO_MQTT_PROTOCOL_VERSION: must be 5"):
        ConnectionSettings.from_env({**env, "AIO_MQTT_PROTOCOL_VERSION": "3"})
    token = tmp_path / "token"
    token.write_text("sat")
    for name, value in (("AIO_SAT_FILE", str(token)), ("AIO_MQTT_SESSION_EXPIRY", "60")):
        with pytest.raises(ValueError, match=rf"^{name}: needs MQTT 5"):
            ConnectionSettings.from_env({**env, "AIO_MQTT_PROTOCOL_VERSION": "4", name: value})


# ------------------------------------------------------------------------- reason codes


def test_a_disconnect_without_a_reason_code_says_so() -> None:
    lost = Disconnect(None, "connection lost", DisconnectSource.NETWORK)
    assert lost.code_text == "no reason code"
    assert str(lost) == "network: connection lost"
    coded = Disconnect(0x86, "Bad User Name or Password", DisconnectSource.SERVER, fatal=True)
    assert coded.code_text == "0x86"
    assert str(coded) == "server: 0x86 Bad User Name or Password, fatal"


@pytest.mark.parametrize(
    ("return_code", "mqtt5_code", "fatal"),
    [(1, 0x84, True), (2, 0x85, True), (3, 0x88, False), (4, 0x86, True), (5, 0x87, True)],
)
def test_311_connack_codes_map_onto_their_mqtt5_equivalents(
    return_code: int, mqtt5_code: int, fatal: bool
) -> None:
    assert v311_connack_reason_code(return_code)[0] == mqtt5_code
    assert is_fatal_reason_code(mqtt5_code, "CONNACK") is fatal
    assert set(V311_CONNACK_CODES) == {1, 2, 3, 4, 5}


def test_a_reserved_311_connack_code_is_unspecified_and_not_fatal() -> None:
    code, text = v311_connack_reason_code(0x06)
    assert code == 0x80
    assert "reserves (0x06)" in text
    assert not is_fatal_reason_code(code, "CONNACK")


# ------------------------------------------------------------------------- call sites


async def test_mqtt5_features_are_refused_at_the_call_site() -> None:
    conn = Connection(_v311(), reconnect=FAST)
    with pytest.raises(ValueError, match=r"^properties\.user_properties: needs MQTT 5"):
        conn.publish("t", b"x", properties=PublishProperties(user_properties=(("a", "b"),)))
    with pytest.raises(ValueError, match=r"^properties\.response_topic: needs MQTT 5"):
        conn.publish("t", b"x", properties=PublishProperties(response_topic="r"))
    with pytest.raises(ValueError, match=r"^properties\.correlation_data: needs MQTT 5"):
        conn.publish("t", b"x", properties=PublishProperties(correlation_data=b"c"))
    with pytest.raises(ValueError, match=r"^message_expiry_interval: needs MQTT 5"):
        conn.publish("t", b"x", message_expiry_interval=10)
    for option, value in (
        ("no_local", True),
        ("retain_as_published", True),
        ("retain_handling", 1),
    ):
        with pytest.raises(ValueError, match=rf"^{option}: needs MQTT 5"):
            conn.messages("t/#", **{option: value})
        with pytest.raises(ValueError, match=rf"^{option}: needs MQTT 5"):
            await conn.subscribe("t/#", **{option: value})
    conn.messages("t/#", no_local=False, retain_as_published=False, retain_handling=0)
    with pytest.raises(ValueError, match=r"^end_session: needs MQTT 5"):
        await conn.close(end_session=True)
    with pytest.raises(ValueError, match=r"^conn: envoys need MQTT 5"):
        TelemetrySender(conn, "telemetry")
    await conn.close()


# ------------------------------------------------------------------------- scripted peer


V311_CONNACK_ACCEPTED = packet(0x20, b"\x00\x00")
"""A 3.1.1 CONNACK: session-present flags and return code, no properties."""


def _refuse_with(return_code: int) -> Any:
    async def script(link: PeerLink) -> None:
        link.send(packet(0x20, bytes((0, return_code))))  # a 3.1.1 CONNACK: no properties
        await link.close()

    return script


@pytest.mark.parametrize(
    ("return_code", "mqtt5_code", "fatal"),
    [(1, 0x84, True), (2, 0x85, True), (3, 0x88, False), (4, 0x86, True), (5, 0x87, True)],
)
async def test_a_refused_311_connection_reports_its_code(
    return_code: int, mqtt5_code: int, fatal: bool
) -> None:
    async with ScriptedPeer(_refuse_with(return_code)) as peer:
        conn = Connection(_v311(host="127.0.0.1", port=peer.port), reconnect=FAST)
        events = Recorder(conn.lifecycle)
        async with conn:
            failed = await events.wait_for_item(lambda e: isinstance(e, ConnectFailed), 5)
    assert isinstance(failed, ConnectFailed)
    assert failed.reason_code == mqtt5_code
    assert failed.disconnect.source is DisconnectSource.SERVER
    assert failed.disconnect.fatal is fatal
    assert f"MQTT 3.1.1 CONNACK return code {return_code}" in failed.reason
    assert (failed.retry_in is None) is fatal


async def test_an_mqtt5_connect_answered_in_311_says_to_choose_4() -> None:
    """A 3.1.1-only broker answers an MQTT 5 CONNECT with return code 1 (what amqtt does)."""
    async with ScriptedPeer(_refuse_with(1)) as peer:
        conn = Connection(ConnectionSettings(host="127.0.0.1", port=peer.port), reconnect=FAST)
        events = Recorder(conn.lifecycle)
        async with conn:
            await conn.wait_for(ConnectionState.FAILED, 5)
    failed = next(e for e in events.items if isinstance(e, ConnectFailed))
    assert failed.reason_code == 0x84
    assert failed.disconnect.fatal
    assert "connect with protocol_version=4" in failed.reason
    assert peer.connections == 1


@pytest.mark.parametrize("named", [False, True], ids=["random id", "named"])
async def test_every_311_connect_carries_no_properties_and_the_same_clean_session(
    named: bool,
) -> None:
    """A reconnect asks for the same Clean Session as the first CONNECT: with 1 the broker kept
    nothing to resume, and a 0 then would leave a session behind that nothing ever ends."""
    connects: list[bytes] = []

    async def accept_then_drop(link: PeerLink) -> None:
        connects.append(link.connect)
        link.send(V311_CONNACK_ACCEPTED)
        await link.drain()
        if link.number == 1:
            link.abort()
        else:
            await link.serve()

    client_id = f"cs-{next(_ids)}" if named else ""
    async with ScriptedPeer(accept_then_drop) as peer:
        settings = _v311(host="127.0.0.1", port=peer.port, client_id=client_id, keep_alive=30)
        conn = Connection(settings, reconnect=FAST)
        disconnects = Recorder(conn.disconnects)
        async with conn:
            lost = await disconnects.wait_for_item(lambda d: True, 5)
            await disconnects.wait_until(lambda _: len(connects) >= 2, 5, "the reconnect")
            await conn.wait_for(ConnectionState.CONNECTED, 5)
    assert lost.reason_code is None, "MQTT 3.1.1 gives no reason code for a lost link"
    assert lost.source is DisconnectSource.NETWORK
    # body: "MQTT", level 4, flags, keep alive, then the client id at once (no properties)
    expected_flags = 0x00 if named else 0x02
    for connect in connects[:2]:
        body = connect[2:]
        assert body[:7] == mqtt_str("MQTT") + b"\x04"
        assert body[7] == expected_flags
        assert body[8:10] == (30).to_bytes(2, "big")
        assert body[10:] == mqtt_str(settings.client_id)


# ------------------------------------------------------------------------- a 3.1.1-only broker


@pytest.fixture
def amqtt() -> Iterator[AmqttBroker]:
    """amqtt, a broker that speaks only MQTT 3.1.1 (skipped, with why, when not installed)."""
    if not amqtt_available():
        pytest.skip("amqtt is not installed (pip install amqtt; it is in the test extra)")
    broker = AmqttBroker()
    try:
        yield broker.start()
    finally:
        broker.close()


def _amqtt_settings(broker: AmqttBroker, **overrides: Any) -> ConnectionSettings:
    return _v311(host=broker.host, port=broker.port, **overrides)


@pytest.mark.broker
async def test_a_311_only_broker_carries_every_qos(amqtt: AmqttBroker) -> None:
    async with (
        Connection(_amqtt_settings(amqtt), reconnect=FAST) as sub,
        Connection(_amqtt_settings(amqtt), reconnect=FAST) as pub,
    ):
        got = Recorder(sub.messages("q/#", qos=2))
        assert await asyncio.wait_for(sub.subscribe("q/#", qos=2), 5) == 2
        await sub.unsubscribe("q/#")  # (the messages() reader keeps the subscription)
        for qos in (0, 1, 2):
            result = await asyncio.wait_for(pub.publish(f"q/{qos}", b"%d" % qos, qos=qos), 5)
            assert (result.qos, result.reason_code) == (qos, 0)
        await got.wait_until(lambda ms: len(ms) >= 3, 5, "three messages")
        assert sorted((m.topic, m.payload) for m in got.items) == [
            ("q/0", b"0"),
            ("q/1", b"1"),
            ("q/2", b"2"),
        ]


@pytest.mark.broker
async def test_a_311_only_broker_crash_loses_nothing_queued(amqtt: AmqttBroker) -> None:
    """The broker crashes: both sides see a network loss without a reason code; what the
    publisher queued meanwhile arrives, in order, once the subscriber has re-subscribed (the
    broker kept no session)."""
    slow = ReconnectPolicy(backoff=Backoff(initial=60.0, maximum=60.0, jitter=Jitter.NONE))
    async with (
        Connection(_amqtt_settings(amqtt), reconnect=FAST) as sub,
        Connection(_amqtt_settings(amqtt), reconnect=slow) as pub,
    ):
        got = Recorder(sub.messages("crash/#", qos=1))
        lost = Recorder(pub.disconnects)
        sub_lost = Recorder(sub.disconnects)
        await asyncio.wait_for(sub.subscribe("crash/#", qos=1), 5)
        await pub.wait_for(ConnectionState.CONNECTED, 5)
        amqtt.kill()
        gone = await lost.wait_for_item(lambda d: True, 5)
        assert (gone.source, gone.reason_code) == (DisconnectSource.NETWORK, None)
        # (until the subscriber has seen the loss too, its old grant still stands)
        sub_gone = await sub_lost.wait_for_item(lambda d: True, 5)
        assert (sub_gone.source, sub_gone.reason_code) == (DisconnectSource.NETWORK, None)
        queued = [pub.publish("crash/n", b"%d" % i, qos=1) for i in range(10)]
        amqtt.start()
        await asyncio.wait_for(sub.subscribe("crash/#", qos=1), 10)  # granted again
        pub.configure(reconnect=FAST)  # the publisher comes back only now
        results = await asyncio.wait_for(asyncio.gather(*queued), 10)
        assert all(r.reason_code == 0 for r in results)
        await got.wait_until(lambda ms: len(ms) >= 10, 5, "the queued messages")
        assert [m.payload for m in got.items] == [b"%d" % i for i in range(10)]
