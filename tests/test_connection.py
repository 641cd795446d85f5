"""Connection against a real Mosquitto: connect, publish, subscribe, and the three loss cases."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from reactivex import operators as ops

from rxmqtt import (
    Backoff,
    Connected,
    ConnectFailed,
    Connection,
    ConnectionSettings,
    ConnectionState,
    Disconnected,
    DisconnectSource,
    GaveUp,
    ReconnectPolicy,
    SessionLost,
    Will,
)
from rxmqtt.testing import BrokerConfig, FaultProxy, MosquittoBroker
from rxmqtt.testing.recorder import Recorder
from tests._helpers import FAST, wait_log

pytestmark = pytest.mark.broker

_ids = itertools.count()


def settings_for(host: str, port: int, name: str = "", **overrides: object) -> ConnectionSettings:
    client_id = overrides.pop("client_id", None) or f"t-{name or 'c'}-{next(_ids)}"
    return ConnectionSettings(host=host, port=port, client_id=str(client_id), **overrides)  # type: ignore[arg-type]


def broker_settings(broker: MosquittoBroker, **overrides: object) -> ConnectionSettings:
    return settings_for(broker.host, broker.port, **overrides)


def proxy_settings(proxy: FaultProxy, **overrides: object) -> ConnectionSettings:
    return settings_for(proxy.host, proxy.port, **overrides)


def _connection(broker: MosquittoBroker, version: int) -> Connection:
    """A fast-reconnecting connection to ``broker`` speaking MQTT ``version`` (5 or 4)."""
    return Connection(broker_settings(broker, protocol_version=version), reconnect=FAST)


async def test_connects_and_state_is_derived_from_lifecycle(
    rxmqtt_mosquitto: MosquittoBroker, mqtt_version: int
) -> None:
    conn = _connection(rxmqtt_mosquitto, mqtt_version)
    states = Recorder(conn.connection_state)
    events = Recorder(conn.lifecycle)
    assert states.items == [ConnectionState.DISCONNECTED]
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, timeout=5)
        late = Recorder(conn.connection_state)
        assert late.items == [ConnectionState.CONNECTED], "replays the current state"
        assert conn.broker_limits is not None
    assert states.items == [
        ConnectionState.DISCONNECTED,
        ConnectionState.CONNECTING,
        ConnectionState.CONNECTED,
        ConnectionState.CLOSED,
    ]
    kinds = [type(e).__name__ for e in events.items]
    assert kinds == ["Connecting", "Connected", "Disconnected", "Closed"]
    assert events.items[2].disconnect.source is DisconnectSource.USER  # type: ignore[attr-defined]
    assert events.completed
    assert states.items[-1] is ConnectionState.CLOSED


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_publish_roundtrip_resolves_with_reason_code(
    rxmqtt_mosquitto: MosquittoBroker, qos: int, mqtt_version: int
) -> None:
    async with (
        _connection(rxmqtt_mosquitto, mqtt_version) as pub,
        _connection(rxmqtt_mosquitto, mqtt_version) as sub,
    ):
        got = Recorder(sub.messages("rt/#", qos=2))
        await sub.wait_for(ConnectionState.CONNECTED, 5)
        await pub.wait_for(ConnectionState.CONNECTED, 5)
        await _subscribed(sub, pub, "rt/probe", got)
        result = await pub.publish("rt/x", b"hello", qos=qos)
        assert result.qos == qos
        assert result.reason_code in (0x00, 0x10)  # success / no matching subscribers
        await got.wait_for_item(lambda m: m.topic == "rt/x", 5)
        msg = next(m for m in got.items if m.topic == "rt/x")
        assert msg.payload == b"hello"
        assert msg.qos == qos


async def _subscribed(
    sub: Connection, pub: Connection, probe_topic: str, got: Recorder[object]
) -> None:
    """Wait until the subscription is live: publish probes until one arrives."""
    for _ in range(100):
        await pub.publish(probe_topic, b"probe", qos=1)
        try:
            await got.wait_for_item(lambda m: m.topic == probe_topic, 0.1)  # type: ignore[attr-defined]
            return
        except TimeoutError:
            continue
    raise TimeoutError("subscription never became live")


async def test_qos2_is_delivered_exactly_once(
    rxmqtt_mosquitto: MosquittoBroker, mqtt_version: int
) -> None:
    async with (
        _connection(rxmqtt_mosquitto, mqtt_version) as pub,
        _connection(rxmqtt_mosquitto, mqtt_version) as sub,
    ):
        got = Recorder(sub.messages("x2/#", qos=2))
        await sub.wait_for(ConnectionState.CONNECTED, 5)
        await pub.wait_for(ConnectionState.CONNECTED, 5)
        await _subscribed(sub, pub, "x2/probe", got)
        results = await asyncio.gather(
            *(pub.publish("x2/data", str(i).encode(), qos=2) for i in range(200))
        )
        assert all(r.reason_code == 0 for r in results)
        await got.wait_until(lambda ms: sum(m.topic == "x2/data" for m in ms) >= 200, 10)
        payloads = [m.payload for m in got.items if m.topic == "x2/data"]
        assert sorted(payloads, key=int) == [str(i).encode() for i in range(200)]
        assert len(payloads) == len(set(payloads)) == 200


async def test_messages_are_refcounted_one_broker_subscription(
    rxmqtt_mosquitto: MosquittoBroker, mqtt_version: int
) -> None:
    async with (
        _connection(rxmqtt_mosquitto, mqtt_version) as pub,
        Connection(
            broker_settings(rxmqtt_mosquitto, name="rc", protocol_version=mqtt_version),
            reconnect=FAST,
        ) as sub,
    ):
        await sub.wait_for(ConnectionState.CONNECTED, 5)
        a = Recorder(sub.messages("rc/+"))
        b = Recorder(sub.messages("rc/+"))
        await _subscribed(sub, pub, "rc/probe", a)
        a.dispose()
        await pub.publish("rc/1", b"one", qos=1)
        await b.wait_for_item(lambda m: m.payload == b"one", 5)
        assert all(m.payload != b"one" for m in a.items), "disposed subscriber gets nothing"
        b.dispose()
        # last dispose -> UNSUBSCRIBE: a fresh probe subscriber sees the broker log say so
        await wait_log(rxmqtt_mosquitto, f"Received UNSUBSCRIBE from {sub.settings.client_id}")
        assert (
            rxmqtt_mosquitto.log_text().count(f"Received SUBSCRIBE from {sub.settings.client_id}")
            == 1
        )


# ---------------------------------------------------------------- the seed's three loss cases


async def test_loss_case_1_broker_stopped_and_restarted(
    rxmqtt_mosquitto: MosquittoBroker, mqtt_version: int
) -> None:
    conn = _connection(rxmqtt_mosquitto, mqtt_version)
    states = Recorder(conn.connection_state)
    disconnects = Recorder(conn.disconnects)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        rxmqtt_mosquitto.stop()  # SIGTERM: Mosquitto 2.0.11 just closes the socket
        first = await disconnects.wait_for_item(lambda d: True, 5)
        assert first.source is DisconnectSource.NETWORK
        assert first.reason_code == (0x80 if mqtt_version == 5 else None), "3.1.1: none"
        assert not first.fatal
        await conn.wait_for(ConnectionState.RECONNECTING, 5)
        rxmqtt_mosquitto.start()
        await conn.wait_for(ConnectionState.CONNECTED, 10)
    seq = _dedupe(states.items)
    assert seq[:5] == [
        ConnectionState.DISCONNECTED,
        ConnectionState.CONNECTING,
        ConnectionState.CONNECTED,
        ConnectionState.RECONNECTING,
        ConnectionState.CONNECTED,
    ]


def _dedupe(states: list[ConnectionState]) -> list[ConnectionState]:
    return [s for i, s in enumerate(states) if i == 0 or states[i - 1] is not s]


async def test_loss_case_2_server_disconnects_with_reason_code(
    rxmqtt_mosquitto: MosquittoBroker, rxmqtt_fault_proxy: FaultProxy, mqtt_version: int
) -> None:
    conn = Connection(
        proxy_settings(rxmqtt_fault_proxy, protocol_version=mqtt_version), reconnect=FAST
    )
    events = Recorder(conn.lifecycle)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        rxmqtt_fault_proxy.wait_for_connections(1, timeout=5)
        # A PUBLISH with QoS 3 is malformed: Mosquitto answers DISCONNECT with a reason code
        # (MQTT 5); an MQTT 3.1.1 server has no DISCONNECT to send and just closes the socket.
        rxmqtt_fault_proxy.connections[0].inject_to_server(b"\x36\x05\x00\x01a\x00\x00")
        lost = await events.wait_for_item(lambda e: isinstance(e, Disconnected), 5)
        assert isinstance(lost, Disconnected)
        if mqtt_version == 5:
            assert lost.disconnect.source is DisconnectSource.SERVER
            assert lost.disconnect.reason_code in (0x81, 0x82), lost.disconnect
        else:
            assert lost.disconnect.source is DisconnectSource.NETWORK
            assert lost.disconnect.reason_code is None, lost.disconnect
        assert lost.retry_in is not None
        await events.wait_until(
            lambda es: sum(isinstance(e, Connected) for e in es) >= 2, 10, "reconnect"
        )
        assert conn.state is ConnectionState.CONNECTED


async def test_loss_case_3_blackholed_network_detected_by_keepalive(
    rxmqtt_mosquitto: MosquittoBroker, rxmqtt_fault_proxy: FaultProxy, mqtt_version: int
) -> None:
    """The live link goes silent (sockets open, nothing forwarded): the keep-alive notices and
    the reconnect gets through. Only that link is black-holed: a proxy-wide black hole would
    also swallow a fast reconnect's CONNECT if it started before the heal, and that attempt
    would then wait its whole connect_timeout."""
    keep_alive = 2
    conn = Connection(
        proxy_settings(rxmqtt_fault_proxy, keep_alive=keep_alive, protocol_version=mqtt_version),
        reconnect=FAST,
    )
    disconnects = Recorder(conn.disconnects)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        loop = asyncio.get_running_loop()
        (link,) = rxmqtt_fault_proxy.connections
        link.blackhole()
        cut_at = loop.time()
        lost = await disconnects.wait_for_item(lambda d: True, 3 * keep_alive)
        detected_after = loop.time() - cut_at
        assert lost.source is DisconnectSource.KEEPALIVE
        assert lost.reason_code == (0x8D if mqtt_version == 5 else None)
        assert detected_after <= 1.5 * keep_alive, f"took {detected_after:.2f}s"
        await conn.wait_for(ConnectionState.CONNECTED, 10)
    assert rxmqtt_fault_proxy.accepted >= 2, "the reconnect went through the proxy"


async def test_session_taken_over_code_is_fatal_no_takeover_fight() -> None:
    """A broker that sends DISCONNECT 0x8E (session taken over) makes the connection FAILED."""
    connects = 0

    async def fake_broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connects
        await reader.read(1024)  # CONNECT
        connects += 1
        writer.write(b"\x20\x03\x00\x00\x00")  # CONNACK success, no properties
        await writer.drain()
        writer.write(b"\xe0\x02\x8e\x00")  # DISCONNECT 0x8E Session taken over
        await writer.drain()
        await reader.read(1024)
        writer.close()

    server = await asyncio.start_server(fake_broker, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        conn = Connection(settings_for("127.0.0.1", port), reconnect=FAST)
        events = Recorder(conn.lifecycle)
        async with conn:
            await conn.wait_for(ConnectionState.FAILED, 5)
        lost = next(e for e in events.items if isinstance(e, Disconnected))
        assert lost.disconnect.reason_code == 0x8E
        assert lost.disconnect.source is DisconnectSource.SERVER
        assert lost.disconnect.fatal
        assert lost.retry_in is None
        assert any(isinstance(e, GaveUp) for e in events.items)
        assert connects == 1


async def test_wrong_password_fails_after_one_attempt(
    rxmqtt_mosquitto_factory: object, mqtt_version: int
) -> None:
    broker: MosquittoBroker = rxmqtt_mosquitto_factory(BrokerConfig(users={"alice": "secret"}))  # type: ignore[operator]
    conn = Connection(
        broker_settings(broker, username="alice", password="wrong", protocol_version=mqtt_version),
        reconnect=FAST,
    )
    events = Recorder(conn.lifecycle)
    async with conn:
        await conn.wait_for(ConnectionState.FAILED, 5)
    attempts = [e for e in events.items if type(e).__name__ == "Connecting"]
    failed = [e for e in events.items if isinstance(e, ConnectFailed)]
    assert len(attempts) == 1
    assert len(failed) == 1
    assert failed[0].reason_code in (0x86, 0x87)
    assert failed[0].disconnect.fatal
    assert failed[0].retry_in is None

    good = Connection(
        broker_settings(broker, username="alice", password="secret", protocol_version=mqtt_version)
    )
    async with good:
        await good.wait_for(ConnectionState.CONNECTED, 5)


async def test_password_provider_is_read_on_every_attempt(
    rxmqtt_mosquitto_factory: object, mqtt_version: int
) -> None:
    broker: MosquittoBroker = rxmqtt_mosquitto_factory(BrokerConfig(users={"bob": "token-2"}))  # type: ignore[operator]
    tokens = iter(["token-1", "token-2", "token-2", "token-2"])
    policy = ReconnectPolicy(
        backoff=Backoff(initial=0.05, maximum=0.1), is_fatal=lambda code: False
    )
    conn = Connection(
        broker_settings(broker, username="bob", password=lambda: next(tokens)), reconnect=policy
    )
    events = Recorder(conn.lifecycle)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
    failed = [e for e in events.items if isinstance(e, ConnectFailed)]
    assert len(failed) == 1
    assert failed[0].reason_code in (0x86, 0x87)


# ---------------------------------------------------------------- sessions and wills


async def test_persistent_session_survives_graceful_restart_without_resubscribing(
    rxmqtt_mosquitto_factory: object, mqtt_version: int
) -> None:
    broker: MosquittoBroker = rxmqtt_mosquitto_factory(BrokerConfig(persistence=True))  # type: ignore[operator]
    # (a named client keeps its session: 3600 s on MQTT 5, Clean Session 0 on MQTT 3.1.1)
    sub_settings = broker_settings(
        broker, name="ps", clean_start=False, protocol_version=mqtt_version
    )
    async with (
        Connection(sub_settings, reconnect=FAST) as sub,
        _connection(broker, mqtt_version) as pub,
    ):
        events = Recorder(sub.lifecycle)
        got = Recorder(sub.messages("ps/#", qos=1))
        await sub.wait_for(ConnectionState.CONNECTED, 5)
        await pub.wait_for(ConnectionState.CONNECTED, 5)
        await _subscribed(sub, pub, "ps/probe", got)
        before = len(events.items)
        broker.restart(graceful=True)
        await events.wait_until(
            lambda es: any(isinstance(e, Connected) for e in es[before:]), 10, "reconnect"
        )
        reconnected = next(e for e in events.items[before:] if isinstance(e, Connected))
        assert reconnected.session_present is True
        assert not any(isinstance(e, SessionLost) for e in events.items)
        await pub.wait_for(ConnectionState.CONNECTED, 10)
        await pub.publish("ps/after", b"still here", qos=1)
        await got.wait_for_item(lambda m: m.topic == "ps/after", 5)
        subscribes = broker.log_text().count(f"Received SUBSCRIBE from {sub_settings.client_id}")
        assert subscribes == 1, "the session kept the subscription; no re-SUBSCRIBE"


async def test_session_lost_resubscribes_live_filters(
    rxmqtt_mosquitto: MosquittoBroker, mqtt_version: int
) -> None:
    """Without persistence a broker crash loses the session: SessionLost, then re-subscribe."""
    sub_settings = broker_settings(
        rxmqtt_mosquitto,
        name="sl",
        clean_start=False,
        protocol_version=mqtt_version,
    )
    async with (
        Connection(sub_settings, reconnect=FAST) as sub,
        _connection(rxmqtt_mosquitto, mqtt_version) as pub,
    ):
        events = Recorder(sub.lifecycle)
        got = Recorder(sub.messages("sl/#", qos=1))
        await sub.wait_for(ConnectionState.CONNECTED, 5)
        await pub.wait_for(ConnectionState.CONNECTED, 5)
        await _subscribed(sub, pub, "sl/probe", got)
        rxmqtt_mosquitto.kill()
        rxmqtt_mosquitto.start()
        await events.wait_for_item(lambda e: isinstance(e, SessionLost), 10)
        await pub.wait_for(ConnectionState.CONNECTED, 10)
        await _subscribed(sub, pub, "sl/probe2", got)


async def test_subscribe_while_offline_waits_for_the_next_connections_grant(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    """Offline, a grant is the last link's and the broker may have lost it (here it crashed,
    taking the session along): subscribe() resolves only once the next connection has the
    subscription again, so what is published from then on reaches it."""
    settings = settings_for(rxmqtt_mosquitto.host, rxmqtt_mosquitto.port, "offline-grant")
    async with Connection(settings, reconnect=FAST) as conn:
        events = Recorder(conn.lifecycle)
        assert await asyncio.wait_for(conn.subscribe("og/#", qos=1), 5) == 1
        rxmqtt_mosquitto.kill()
        await events.wait_for_item(lambda e: isinstance(e, Disconnected), 5)
        again = asyncio.ensure_future(conn.subscribe("og/#", qos=1))
        for _ in range(10):  # (loop turns, not time: the request reaches the loop's side)
            await asyncio.sleep(0)
        assert not again.done(), "subscribe() resolved on the lost connection's grant"
        rxmqtt_mosquitto.start()
        assert await asyncio.wait_for(again, 10) == 1
        assert any(isinstance(e, SessionLost) for e in events.items)


async def test_will_is_sent_on_ungraceful_loss_not_on_close(
    rxmqtt_mosquitto: MosquittoBroker, rxmqtt_fault_proxy: FaultProxy, mqtt_version: int
) -> None:
    will = Will("wills/dev", b"gone", qos=1)
    async with _connection(rxmqtt_mosquitto, mqtt_version) as watcher:
        wills = Recorder(watcher.messages("wills/#", qos=1))
        await watcher.wait_for(ConnectionState.CONNECTED, 5)
        await asyncio.sleep(0)  # let SUBSCRIBE go out

        clean = Connection(
            proxy_settings(rxmqtt_fault_proxy, will=will, protocol_version=mqtt_version),
            reconnect=FAST,
        )
        async with clean:
            await clean.wait_for(ConnectionState.CONNECTED, 5)
        # closed cleanly: no will. Prove it by sending a marker after and seeing only it.
        async with Connection(
            broker_settings(rxmqtt_mosquitto, protocol_version=mqtt_version)
        ) as marker:
            await marker.wait_for(ConnectionState.CONNECTED, 5)
            await marker.publish("wills/marker", b"m", qos=1)
        await wills.wait_for_item(lambda m: m.topic == "wills/marker", 5)
        assert [m.topic for m in wills.items] == ["wills/marker"]

        dying = Connection(
            proxy_settings(rxmqtt_fault_proxy, will=will, protocol_version=mqtt_version),
            reconnect=FAST,
        )
        async with dying:
            await dying.wait_for(ConnectionState.CONNECTED, 5)
            rxmqtt_fault_proxy.reset()
            msg = await wills.wait_for_item(lambda m: m.topic == "wills/dev", 5)
            assert msg.payload == b"gone"


async def test_start_in_thread_for_programs_without_asyncio(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    conn = Connection(broker_settings(rxmqtt_mosquitto), reconnect=FAST)

    def in_thread() -> int:
        with conn.start_in_thread():
            conn.connection_state.pipe(
                ops.filter(lambda s: s is ConnectionState.CONNECTED), ops.first()
            ).run()  # blocks this thread until connected
            result = conn.publish("thread/t", b"x", qos=1).run()
            return result.reason_code

    code = await asyncio.wait_for(asyncio.to_thread(in_thread), 10)
    assert code in (0, 0x10)
    assert conn.state is ConnectionState.CLOSED


async def test_a_raising_subscriber_cannot_break_the_connection(
    rxmqtt_mosquitto: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    conn = Connection(broker_settings(rxmqtt_mosquitto), reconnect=FAST)

    def explode(_: object) -> None:
        raise BrokenPipeError("the app's stdout went away")

    for stream in (conn.lifecycle, conn.connection_state, conn.disconnects, conn.queue_stats):
        stream.subscribe(explode)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        conn.messages("boom/#").subscribe(explode)
        conn.publish("boom/x", b"1", qos=1).subscribe(explode)
        rxmqtt_mosquitto.restart()
        await conn.wait_for(ConnectionState.RECONNECTING, 5)
        await conn.wait_for(ConnectionState.CONNECTED, 10)
        assert (await conn.publish("boom/y", b"2", qos=1)).reason_code in (0, 0x10)
    assert "raised in on_next; ignored" in caplog.text


async def test_state_is_current_when_lifecycle_subscribers_run(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    conn = Connection(broker_settings(rxmqtt_mosquitto), reconnect=FAST)
    seen: list[tuple[str, ConnectionState]] = []
    conn.lifecycle.subscribe(lambda e: seen.append((type(e).__name__, conn.state)))
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
    assert seen[:2] == [
        ("Connecting", ConnectionState.CONNECTING),
        ("Connected", ConnectionState.CONNECTED),
    ]
    assert seen[-1] == ("Closed", ConnectionState.CLOSED)


async def test_publishes_still_queued_at_close_fail_with_connection_closed(
    rxmqtt_fault_proxy: FaultProxy,
) -> None:
    from rxmqtt import ConnectionClosedError, DropReason

    conn = Connection(proxy_settings(rxmqtt_fault_proxy), reconnect=FAST)
    dropped = Recorder(conn.dropped)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        rxmqtt_fault_proxy.refuse()
        rxmqtt_fault_proxy.reset()
        await conn.wait_for(ConnectionState.RECONNECTING, 5)
        pending = Recorder(conn.publish("late/x", b"queued", qos=1))
    await pending.wait_done(5)
    assert isinstance(pending.error, ConnectionClosedError)
    assert [d.reason for d in dropped.items] == [DropReason.CLOSED]


async def test_queue_stats_report_every_change_offline_and_one_per_pass_online(
    rxmqtt_mosquitto: MosquittoBroker, rxmqtt_fault_proxy: FaultProxy
) -> None:
    """Offline the current value is exact after each publish(); online a burst is reported
    once per loop pass, not three times per message (queue, send, acknowledgement)."""
    conn = Connection(proxy_settings(rxmqtt_fault_proxy), reconnect=FAST)
    stats = Recorder(conn.queue_stats)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        burst = 300
        before = len(stats.items)
        results = [conn.publish("stats/burst", b"v", qos=1) for _ in range(burst)]
        assert len(stats.items) == before, "a burst on one loop pass is reported after it"
        await asyncio.gather(*results)
        await stats.wait_for_item(lambda s: s.in_flight == 0 and s.depth == 0, 5)
        # each later snapshot covers a loop pass: at most one per acknowledgement, not three
        assert len(stats.items) - before <= burst + 1

        rxmqtt_fault_proxy.refuse()
        rxmqtt_fault_proxy.reset()
        await conn.wait_for(ConnectionState.RECONNECTING, 5)
        before = len(stats.items)
        for n in range(1, 6):
            conn.publish("stats/offline", b"v", qos=1)
            assert stats.items[-1].depth == n, "exact right after publish() while offline"
        assert len(stats.items) == before + 5
        rxmqtt_fault_proxy.accept()
        await stats.wait_for_item(lambda s: s.depth == 0 and s.in_flight == 0, 10)


async def test_queue_stats_count_publishes_in_flight(rxmqtt_mosquitto: MosquittoBroker) -> None:
    async with Connection(broker_settings(rxmqtt_mosquitto), reconnect=FAST) as conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        stats = Recorder(conn.queue_stats)
        results = [conn.publish("stats/x", b"v", qos=1) for _ in range(5)]
        await stats.wait_for_item(lambda s: s.in_flight == 5, 5)
        for result in results:
            await result
        await stats.wait_for_item(lambda s: s.in_flight == 0 and s is stats.items[-1], 5)
