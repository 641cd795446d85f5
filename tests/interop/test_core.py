"""The core integration tests, run against Mosquitto and ejabberd alike (the ``broker`` fixture).

Where the brokers differ, the test asserts each broker's measured :class:`Traits` -- and that
the library handles both correctly (the same states, streams and publish outcomes).
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from rxmqtt import (
    Connected,
    ConnectFailed,
    Connection,
    ConnectionState,
    Disconnected,
    DisconnectSource,
    GaveUp,
    LifecycleEvent,
    Message,
    SessionLost,
    Will,
)
from rxmqtt.testing import FaultProxy
from rxmqtt.testing.recorder import Recorder

from .conftest import (
    FAST,
    InteropBroker,
    assert_queued_once,
    client_id,
    connected_after,
    publish_while_offline,
    until_delivered,
)

pytestmark = pytest.mark.broker


async def test_connects_and_reports_broker_limits(broker: InteropBroker) -> None:
    conn = broker.connection("conn")
    states = Recorder(conn.connection_state)
    events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 10)
        limits = conn.broker_limits
        assert limits is not None
        assert limits.shared_subscription_available is broker.traits.shared_subscription_available
        assert limits.maximum_qos == 2
        assert limits.retain_available
    assert [s.name for s in states.items] == [
        "DISCONNECTED",
        "CONNECTING",
        "CONNECTED",
        "CLOSED",
    ]
    assert [type(e).__name__ for e in events.items] == [
        "Connecting",
        "Connected",
        "Disconnected",
        "Closed",
    ]
    connected = events.items[1]
    assert isinstance(connected, Connected)
    assert connected.session_present is False, "a fresh client id has no session"


async def test_connect_without_password(broker: InteropBroker) -> None:
    """ejabberd refuses a CONNECT without a password even with anonymous login: a fatal 0x87."""
    settings = broker.settings("nopw", username=None, password=None)
    conn = Connection(settings, reconnect=FAST)
    events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
    async with conn:
        if broker.traits.needs_credentials:
            await conn.wait_for(ConnectionState.FAILED, 10)
            assert any(isinstance(e, GaveUp) for e in events.items)
            failed = next(e for e in events.items if isinstance(e, ConnectFailed))
            assert failed.reason_code == 0x87
        else:
            await conn.wait_for(ConnectionState.CONNECTED, 10)


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_publish_roundtrip_with_reason_codes(broker: InteropBroker, qos: int) -> None:
    async with broker.connection("pub") as pub, broker.connection("sub") as sub:
        got: Recorder[Message] = Recorder(sub.messages("rt/#", qos=2))
        await sub.wait_for(ConnectionState.CONNECTED, 10)
        await pub.wait_for(ConnectionState.CONNECTED, 10)
        await until_delivered(pub, got, "rt/probe")

        result = await pub.publish("rt/x", b"hello", qos=qos)
        assert result.qos == qos
        assert result.reason_code == 0x00, result
        msg = await got.wait_for_item(lambda m: m.topic == "rt/x", 5)
        assert (msg.payload, msg.qos, msg.retain) == (b"hello", qos, False)

        nobody = await pub.publish("nobody/listens", b"x", qos=qos)
        # "No matching subscribers" (0x10) is a success code: the publish resolves either way.
        assert nobody.reason_code == broker.traits.no_subscribers_codes[qos], nobody


async def test_qos2_burst_is_delivered_exactly_once_in_order(broker: InteropBroker) -> None:
    async with broker.connection("pub") as pub, broker.connection("sub") as sub:
        got: Recorder[Message] = Recorder(sub.messages("x2/#", qos=2))
        await sub.wait_for(ConnectionState.CONNECTED, 10)
        await pub.wait_for(ConnectionState.CONNECTED, 10)
        await until_delivered(pub, got, "x2/probe")
        n = 200
        results = await asyncio.gather(
            *(pub.publish("x2/data", str(i).encode(), qos=2) for i in range(n))
        )
        assert all(r.reason_code == 0 for r in results)
        await got.wait_until(lambda ms: sum(m.topic == "x2/data" for m in ms) >= n, 20)
        payloads = [m.payload for m in got.items if m.topic == "x2/data"]
        assert payloads == [str(i).encode() for i in range(n)], "once each, in order"


async def test_retained_message_reaches_a_later_subscriber(broker: InteropBroker) -> None:
    async with broker.connection("pub") as pub:
        await pub.wait_for(ConnectionState.CONNECTED, 10)
        result = await pub.publish("ret/state", b"on", qos=1, retain=True)
        assert result.reason_code in (0x00, 0x10)
        async with broker.connection("late") as late:
            got: Recorder[Message] = Recorder(late.messages("ret/#", qos=1))
            msg = await got.wait_for_item(lambda m: m.topic == "ret/state", 10)
            assert (msg.payload, msg.retain) == (b"on", True)


async def test_persistent_session_survives_a_client_reconnect(
    broker: InteropBroker, proxies: list[FaultProxy]
) -> None:
    """The link drops (RST) and stays down while messages are published: on reconnect the
    broker resumes the session (session present, no re-SUBSCRIBE needed) and delivers what
    was queued, once each."""
    proxy = broker.proxy()
    proxies.append(proxy)
    gone_topic = f"ps-gone/{client_id('will')}"
    settings = broker.settings_via(
        proxy, "ps", session_expiry=60, clean_start=False, will=Will(gone_topic, b"gone", qos=1)
    )
    async with Connection(settings, reconnect=FAST) as sub, broker.connection("pub") as pub:
        events: Recorder[LifecycleEvent] = Recorder(sub.lifecycle)
        got: Recorder[Message] = Recorder(sub.messages("ps/#", qos=1))
        gone: Recorder[Message] = Recorder(pub.messages(gone_topic, qos=1))
        await sub.wait_for(ConnectionState.CONNECTED, 10)
        await pub.wait_for(ConnectionState.CONNECTED, 10)
        await until_delivered(pub, got, "ps/probe")
        await until_delivered(sub, gone, gone_topic)

        proxy.refuse()
        proxy.reset()
        await sub.wait_for(ConnectionState.RECONNECTING, 10)
        # The broker publishes the Will once it has noticed the link is gone: from then on the
        # session is offline and what is published for it is queued, not written to a dead
        # socket (the path this test is about).
        await publish_while_offline(pub, gone, "ps")
        before = len(events.items)
        proxy.accept()
        back = await connected_after(events, before, 10, "back")
        assert back.session_present is True
        assert not any(isinstance(e, SessionLost) for e in events.items)
        await assert_queued_once(pub, got, "ps")


async def test_will_on_ungraceful_loss_not_on_close(
    broker: InteropBroker, proxies: list[FaultProxy]
) -> None:
    proxy = broker.proxy()
    proxies.append(proxy)
    will = Will("wills/dev", b"gone", qos=1)
    async with broker.connection("watch") as watcher:
        wills: Recorder[Message] = Recorder(watcher.messages("wills/#", qos=1))
        await watcher.wait_for(ConnectionState.CONNECTED, 10)
        async with broker.connection("marker") as marker:
            await until_delivered(marker, wills, "wills/probe")

            clean = Connection(broker.settings_via(proxy, "clean", will=will), reconnect=FAST)
            async with clean:
                await clean.wait_for(ConnectionState.CONNECTED, 10)
            await marker.publish("wills/marker", b"m", qos=1)
            await wills.wait_for_item(lambda m: m.topic == "wills/marker", 5)
            assert not any(m.topic == "wills/dev" for m in wills.items), "no will on close()"

            dying = Connection(broker.settings_via(proxy, "dying", will=will), reconnect=FAST)
            async with dying:
                await dying.wait_for(ConnectionState.CONNECTED, 10)
                proxy.refuse()
                proxy.reset()
                msg = await wills.wait_for_item(lambda m: m.topic == "wills/dev", 10)
                assert msg.payload == b"gone"


async def test_server_disconnects_a_malformed_packet_with_a_reason_code(
    broker: InteropBroker, proxies: list[FaultProxy]
) -> None:
    proxy = broker.proxy()
    proxies.append(proxy)
    conn = Connection(broker.settings_via(proxy, "bad"), reconnect=FAST)
    events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 10)
        proxy.wait_for_connections(1, timeout=5)
        # A PUBLISH with QoS 3 is malformed; both brokers answer DISCONNECT with a reason code.
        proxy.connections[0].inject_to_server(b"\x36\x05\x00\x01a\x00\x00")
        lost = await events.wait_for_item(lambda e: isinstance(e, Disconnected), 10)
        assert isinstance(lost, Disconnected)
        assert lost.disconnect.source is DisconnectSource.SERVER
        assert lost.disconnect.reason_code in (0x81, 0x82), lost.disconnect
        assert not lost.disconnect.fatal
        await events.wait_until(
            lambda es: sum(isinstance(e, Connected) for e in es) >= 2, 10, "reconnect"
        )


async def test_session_taken_over_by_the_same_client_id(broker: InteropBroker) -> None:
    """A second connection with the same client id takes the session over.

    ejabberd tells the first one (DISCONNECT 0x8E), which stops (FAILED) instead of fighting
    back. Mosquitto 2.0.11 only closes its socket -- indistinguishable from a network loss -- so
    the first reconnects and kicks the second out in turn: a takeover fight paced by backoff.
    Unique client ids are the only cure there."""
    source, code = broker.traits.takeover_disconnect
    first_settings = broker.settings("twin")
    first = Connection(first_settings, reconnect=FAST)
    events: Recorder[LifecycleEvent] = Recorder(first.lifecycle)
    async with first:
        await first.wait_for(ConnectionState.CONNECTED, 10)
        second = Connection(broker.settings("twin", client_id=first_settings.client_id))
        second_events: Recorder[LifecycleEvent] = Recorder(second.lifecycle)
        async with second:
            lost = await events.wait_for_item(lambda e: isinstance(e, Disconnected), 10)
            assert isinstance(lost, Disconnected)
            assert (lost.disconnect.source.value, lost.disconnect.reason_code) == (source, code)
            if lost.disconnect.reason_code == 0x8E:
                assert lost.disconnect.fatal
                await first.wait_for(ConnectionState.FAILED, 10)
                # a FAILED connection never retries; a round trip shows the second undisturbed
                await second.publish("twin/alive", b"1", qos=1)
                assert second.state is ConnectionState.CONNECTED, "no takeover fight"
            else:
                assert not lost.disconnect.fatal
                await second_events.wait_for_item(lambda e: isinstance(e, Disconnected), 10)
                # the fight: the first came back and pushed the second out


async def test_reconnect_after_graceful_restart(fresh_broker: InteropBroker) -> None:
    """Stop the broker gracefully, start it again: what the client is told, whether the session
    and retained messages survived, and that ``messages()`` streams resume either way."""
    broker = fresh_broker
    traits = broker.traits
    sub_settings = broker.settings("rs", session_expiry=600, clean_start=False)
    async with Connection(sub_settings, reconnect=FAST) as sub, broker.connection("pub") as pub:
        events: Recorder[LifecycleEvent] = Recorder(sub.lifecycle)
        got: Recorder[Message] = Recorder(sub.messages("rs/#", qos=1))
        await sub.wait_for(ConnectionState.CONNECTED, 10)
        await pub.wait_for(ConnectionState.CONNECTED, 10)
        await pub.publish("rs/retained", b"kept?", qos=1, retain=True)
        await until_delivered(pub, got, "rs/probe")

        before = len(events.items)
        broker.stop()
        lost = await events.wait_for_item(lambda e: isinstance(e, Disconnected), 10)
        assert isinstance(lost, Disconnected)
        assert (lost.disconnect.source.value, lost.disconnect.reason_code) == (
            traits.shutdown_disconnect
        ), lost.disconnect
        assert not lost.disconnect.fatal
        await sub.wait_for(ConnectionState.RECONNECTING, 5)

        broker.start()
        await events.wait_until(
            lambda es: any(isinstance(e, Connected) for e in es[before:]), 20, "reconnected"
        )
        back = next(e for e in events.items[before:] if isinstance(e, Connected))
        assert isinstance(back, Connected)
        assert back.session_present is traits.session_survives_graceful_restart
        session_lost = any(isinstance(e, SessionLost) for e in events.items)
        assert session_lost is not traits.session_survives_graceful_restart

        await pub.wait_for(ConnectionState.CONNECTED, 20)
        await until_delivered(pub, got, "rs/after")
        assert got.error is None, "the stream survived the restart"
        assert not got.completed

        async with broker.connection("late") as late:
            retained: Recorder[Message] = Recorder(late.messages("rs/retained", qos=1))
            if traits.retained_survives_graceful_restart:
                msg = await retained.wait_for_item(lambda m: True, 10)
                assert msg.payload == b"kept?"


async def test_reconnect_after_crash(fresh_broker: InteropBroker) -> None:
    """SIGKILL: both brokers just vanish (NETWORK), the client reconnects once it is back."""
    broker = fresh_broker
    async with broker.connection("crash") as conn, broker.connection("pub") as pub:
        got: Recorder[Message] = Recorder(conn.messages("cr/#", qos=1))
        disconnects = Recorder(conn.disconnects)
        await conn.wait_for(ConnectionState.CONNECTED, 10)
        await until_delivered(pub, got, "cr/probe")
        broker.kill()
        first = await disconnects.wait_for_item(lambda d: True, 10)
        assert first.source is DisconnectSource.NETWORK
        assert not first.fatal
        broker.start()
        await conn.wait_for(ConnectionState.CONNECTED, 20)
        await pub.wait_for(ConnectionState.CONNECTED, 20)
        await until_delivered(pub, got, "cr/after")


# ---------------------------------------------------------------- raw measurements


def _packet(header: int, body: bytes) -> bytes:
    assert len(body) < 128
    return bytes([header, len(body)]) + body


def _s(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def _connect(flags: int, client_id: str, auth: bytes, props: bytes = b"") -> bytes:
    head = b"\x00\x04MQTT\x05" + bytes([flags]) + b"\x00\x3c" + bytes([len(props)]) + props
    return _packet(0x10, head + _s(client_id) + auth)


def _raw_auth(broker: InteropBroker) -> tuple[int, bytes]:
    creds = broker.credentials()
    if not creds:
        return 0x02, b""
    return 0xC2, _s(creds["username"]) + _s(creds["password"])


def _connack_properties(body: bytes) -> dict[int, int]:
    """Integer-valued CONNACK properties by identifier (enough for 0x11, 0x13, 0x21, 0x2A)."""
    props: dict[int, int] = {}
    length, i = body[2], 3  # flags, reason code, property length (< 128 here)
    end = i + length
    sizes = {0x11: 4, 0x13: 2, 0x21: 2, 0x22: 2, 0x24: 1, 0x25: 1, 0x28: 1, 0x29: 1, 0x2A: 1}
    while i < end:
        ident = body[i]
        size = sizes.get(ident)
        if size is None:  # a string or binary property: skip it
            size = 2 + int.from_bytes(body[i + 1 : i + 3], "big")
            i += 1 + size
            continue
        props[ident] = int.from_bytes(body[i + 1 : i + 1 + size], "big")
        i += 1 + size
    return props


def test_connack_caps_the_session_expiry(broker: InteropBroker) -> None:
    """Asked for 7200 s, ejabberd grants its configured cap (here 3600 s; ejabberd's default is
    300 s) and says so in the CONNACK; Mosquitto 2.0 accepts it and sends no Session Expiry
    Interval. rxmqtt's ``BrokerLimits`` does not record the granted value (see the report)."""
    flags, auth = _raw_auth(broker)
    with socket.create_connection((broker.host, broker.port), timeout=5) as sock:
        sock.sendall(_connect(flags, client_id("se"), auth, b"\x11" + (7200).to_bytes(4, "big")))
        packets = _read_packets(sock, 0.5)
        sock.sendall(b"\xe0\x00")
    assert packets, "no CONNACK"
    assert packets[0][0] == 0x20
    props = _connack_properties(packets[0][1])
    assert props.get(0x11) == broker.traits.granted_session_expiry_for_7200, props


def _read_packets(sock: socket.socket, seconds: float) -> list[tuple[int, bytes]]:
    """Every packet received within ``seconds`` (no acks sent), as (first byte, body)."""
    sock.settimeout(0.05)
    data = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        data += chunk
    packets = []
    while data:
        header, length, shift, i = data[0], 0, 0, 1
        while True:
            byte = data[i]
            length |= (byte & 0x7F) << shift
            shift += 7
            i += 1
            if not byte & 0x80:
                break
        packets.append((header, data[i : i + length]))
        data = data[i + length :]
    return packets


def test_broker_inflight_window_towards_a_slow_subscriber(broker: InteropBroker) -> None:
    """How many QoS 1 messages the broker sends a subscriber that does not acknowledge them.

    Measured with raw sockets: ejabberd keeps exactly one message in flight per session (the
    next waits for the PUBACK), Mosquitto sends all three at once (its window is the client's
    Receive Maximum, 65535 by default). Throughput to one consumer is thus one round trip per
    QoS 1/2 message on ejabberd -- the reason to spread load over consumers."""
    flags, auth = _raw_auth(broker)
    with socket.create_connection((broker.host, broker.port), timeout=5) as sub:
        sub.sendall(_connect(flags, client_id("raw-sub"), auth))
        sub.settimeout(5)
        assert sub.recv(2)[0] == 0x20
        sub.recv(256)
        sub.sendall(_packet(0x82, b"\x00\x01\x00" + _s("win/t") + b"\x01"))
        suback = _read_packets(sub, 0.5)
        assert suback, "no SUBACK"
        assert suback[0][0] == 0x90, suback
        with socket.create_connection((broker.host, broker.port), timeout=5) as pub:
            pub.sendall(_connect(flags, client_id("raw-pub"), auth))
            pub.settimeout(5)
            assert pub.recv(2)[0] == 0x20
            for i in range(1, 4):  # QoS 1 PUBLISH, packet id i, no properties
                pub.sendall(_packet(0x32, _s("win/t") + i.to_bytes(2, "big") + b"\x00" + b"m"))
            publishes = [p for p in _read_packets(sub, 1.0) if p[0] & 0xF0 == 0x30]
    window = broker.traits.broker_inflight_window
    if window is None:
        assert len(publishes) == 3
    else:
        assert len(publishes) == window, publishes
