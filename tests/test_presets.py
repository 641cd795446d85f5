"""Presets: pure checks of the values, then each preset against a real Mosquitto under the fault
it is designed for (broker restart, node move, WAN outage with a process restart, black-holed
Wi-Fi, an offline constrained device)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from pathlib import Path
from typing import Any

import pytest

from rxmqtt import (
    Connected,
    Connection,
    ConnectionSettings,
    ConnectionState,
    DisconnectSource,
    DropReason,
    Message,
    Overflow,
    QueuePolicy,
    SessionLost,
)
from rxmqtt.presets import (
    PRESETS,
    Preset,
    k8s_multi_node,
    k8s_single_node,
    mcu_headless,
    mpu_gui,
    mpu_headless,
    preset,
)
from rxmqtt.queue import DroppedMessage, QueueStats, SqliteStore
from rxmqtt.testing import FaultProxy, MosquittoBroker
from rxmqtt.testing.plugin import BrokerFactory, ProxyFactory
from rxmqtt.testing.recorder import Recorder
from tests._helpers import until_delivered

_ids = itertools.count()


def settings_for(host: str, port: int, name: str) -> ConnectionSettings:
    return ConnectionSettings(host=host, port=port, client_id=f"preset-{name}-{next(_ids)}")


def numbers(messages: list[Message], topic: str) -> list[int]:
    return [int(m.payload.split(b":")[0]) for m in messages if m.topic == topic]


# ---------------------------------------------------------------------------------- pure values


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_valid_documented_value(name: str) -> None:
    factory = PRESETS[name]
    value = factory()
    assert isinstance(value, Preset)
    assert value.name == name
    assert len(factory.__doc__ or "") > 300, "the reasoning is in the docstring"
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.keep_alive = 1  # type: ignore[misc]
    assert value.queue.max_messages is not None, "bounded"
    assert value.queue.max_bytes is not None, "bounded"
    kwargs = value.connection_kwargs()
    assert kwargs == {
        "reconnect": value.reconnect,
        "queue": value.queue,
        "publish_retry": value.publish_retry,
    }
    Connection(value.apply(ConnectionSettings(host="127.0.0.1")), **kwargs)  # accepted


def test_the_types_differ_where_the_seed_says_they_should() -> None:
    assert mpu_gui().reconnect.max_attempts is None, "a GUI never gives up"
    assert mpu_gui().queue.drain.name == "LIFO", "freshest first"
    assert mpu_gui().queue.overflow is Overflow.DROP_OLDEST
    assert mcu_headless().queue.qos0_offline.name == "DROP"
    assert (mcu_headless().queue.max_bytes or 0) <= 16_384
    assert k8s_multi_node().reconnect.max_attempts is not None, "restarts are acceptable"
    assert k8s_single_node().reconnect.backoff.initial <= 0.1, "fast retries"
    single_q = k8s_single_node().queue.max_messages
    headless_q = mpu_headless().queue.max_messages
    assert single_q is not None
    assert headless_q is not None
    assert single_q < headless_q
    assert k8s_multi_node().keep_alive < mpu_headless().keep_alive


def test_overrides_by_keyword_replace_and_dataclasses_replace() -> None:
    small = QueuePolicy(max_messages=5)
    assert mpu_gui(queue=small).queue is small
    assert mpu_gui(keep_alive=3).keep_alive == 3
    assert mpu_gui().replace(session_expiry=7).session_expiry == 7
    assert dataclasses.replace(mpu_gui(), clean_start=True).clean_start
    assert mpu_gui(keep_alive=3).reconnect == mpu_gui().reconnect, "the rest is kept"
    assert preset("mpu-gui", keep_alive=4) == mpu_gui(keep_alive=4)


def test_bad_overrides_raise_at_once_naming_the_argument() -> None:
    with pytest.raises(TypeError, match=r"^bogus: not a preset field"):
        mpu_gui(bogus=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"^keep_alive:"):
        k8s_single_node(keep_alive=-1)
    with pytest.raises(TypeError, match=r"^queue: must be a QueuePolicy"):
        mcu_headless(queue="small")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^connect_timeout:"):
        mpu_headless(connect_timeout=0)
    with pytest.raises(TypeError, match=r"^clean_start:"):
        mpu_headless(clean_start=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^name: unknown preset 'desktop'"):
        preset("desktop")
    with pytest.raises(TypeError, match=r"^settings:"):
        mpu_gui().apply("mqtt://x")  # type: ignore[arg-type]


def test_apply_sets_session_fields_and_keeps_the_rest() -> None:
    settings = ConnectionSettings(
        host="broker", port=1884, client_id="dev-1", username="u", password="p", keep_alive=99
    )
    applied = mcu_headless().apply(settings)
    assert (applied.keep_alive, applied.session_expiry, applied.clean_start) == (60, 3600, False)
    assert applied.receive_maximum == 8
    assert applied.maximum_packet_size == 4096
    assert (applied.host, applied.port, applied.client_id) == ("broker", 1884, "dev-1")
    assert applied.username == "u"
    assert applied.password == "p"
    assert settings.keep_alive == 99, "settings are values: the original is unchanged"
    keeps_own = mpu_gui().apply(dataclasses.replace(settings, receive_maximum=50))
    assert keeps_own.receive_maximum == 50, "None in the preset leaves the settings' value"


@pytest.mark.parametrize("factory", list(PRESETS.values()), ids=list(PRESETS))
def test_a_preset_session_is_for_a_named_client(factory: Any) -> None:
    """The session rule: without a client id nobody can resume a session, so a preset leaves
    the clean, expiring one; a named client gets the preset's persistent session."""
    value = factory()
    anonymous = value.apply(ConnectionSettings(host="broker"))
    assert (anonymous.clean_start, anonymous.session_expiry) == (True, 0)
    assert anonymous.keep_alive == value.keep_alive, "the other session fields still apply"
    named = value.apply(ConnectionSettings(host="broker", client_id="dev-1"))
    assert (named.clean_start, named.session_expiry) == (value.clean_start, value.session_expiry)
    assert named.session_expiry > 0
    assert not named.clean_start


def test_connect_builds_a_connection_with_everything_applied(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "q.db")
    value = mpu_headless().with_store(store)
    assert value.queue.store is store
    assert value.queue.max_messages == mpu_headless().queue.max_messages
    conn = value.connect(ConnectionSettings(host="127.0.0.1", client_id="gw"))
    assert conn.settings.keep_alive == value.keep_alive
    assert conn.settings.session_expiry == 86_400
    assert conn.state is ConnectionState.DISCONNECTED
    store.close()


def test_presets_module_is_pure() -> None:
    import subprocess
    import sys

    code = (
        "import sys, rxmqtt.presets as p; p.mpu_gui(); "
        "print([m for m in ('paho', 'PySide6') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.strip() == "[]", "importing presets loads neither paho nor Qt"


# ------------------------------------------------------------------- against a real Mosquitto


@pytest.mark.broker
async def test_k8s_single_node_reconnects_quickly_after_a_broker_restart_with_its_session(
    rxmqtt_mosquitto_factory: BrokerFactory,
) -> None:
    """The designed-for fault: the broker pod restarts (an update). The client is back within a
    moment of the broker, with its persistent session: no re-subscribe needed."""
    broker = rxmqtt_mosquitto_factory(persistence=True)
    conn = k8s_single_node().connect(settings_for(broker.host, broker.port, "k8s1"))
    events = Recorder(conn.lifecycle)
    got = Recorder(conn.messages("svc/#", qos=1))
    helper = Connection(settings_for(broker.host, broker.port, "helper"))
    async with conn, helper:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        await until_delivered(helper, got, "svc/probe")
        loop = asyncio.get_running_loop()
        broker.stop()  # graceful: Mosquitto saves the session and closes the sockets
        await conn.wait_for(ConnectionState.RECONNECTING, 2)
        broker.start()
        back_at = loop.time()
        await conn.wait_for(ConnectionState.CONNECTED, 10)
        took = loop.time() - back_at
        assert took < 3.0, f"took {took:.2f}s after the broker was back"
        reconnected = [e for e in events.items if isinstance(e, Connected)][-1]
        assert reconnected.session_present, "the persistent session was restored"
        assert not any(isinstance(e, SessionLost) for e in events.items)
        await helper.wait_for(ConnectionState.CONNECTED, 10)
        await helper.publish("svc/after", b"1:after restart", qos=1)
        await got.wait_for_item(lambda m: m.topic == "svc/after", 5, "message after restart")


@pytest.mark.broker
async def test_k8s_multi_node_survives_a_node_vanishing_and_the_broker_moving(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_fault_proxy_factory: ProxyFactory
) -> None:
    """The designed-for fault: the broker's node vanishes (no FIN: only keep-alive notices) and
    the service now routes to the broker on another node, which has no session for us."""
    node_a, node_b = rxmqtt_mosquitto_factory(), rxmqtt_mosquitto_factory()
    service = rxmqtt_fault_proxy_factory(node_a)
    keep_alive = 1  # the preset's 10 s, shortened to keep the test fast; the rest is the preset
    conn = k8s_multi_node(keep_alive=keep_alive).connect(
        settings_for(service.host, service.port, "k8sN")
    )
    events = Recorder(conn.lifecycle)
    disconnects = Recorder(conn.disconnects)
    got = Recorder(conn.messages("fleet/#", qos=1))
    on_b = Connection(settings_for(node_b.host, node_b.port, "on-b"))
    async with conn, on_b:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        (old_link,) = await asyncio.to_thread(service.wait_for_connections, 1, 5.0)
        loop = asyncio.get_running_loop()
        service.retarget(node_b.host, node_b.port)
        old_link.blackhole()  # the node is gone: the socket stays open, nothing comes back
        cut_at = loop.time()
        lost = await disconnects.wait_for_item(lambda d: True, 3 * keep_alive)
        assert lost.source in (DisconnectSource.KEEPALIVE, DisconnectSource.CLIENT), lost
        assert loop.time() - cut_at <= 2 * keep_alive + 0.5
        await events.wait_for_item(lambda e: isinstance(e, SessionLost), 10, "session lost")
        await conn.wait_for(ConnectionState.CONNECTED, 10)
        await on_b.wait_for(ConnectionState.CONNECTED, 5)
        await until_delivered(on_b, got, "fleet/probe")  # re-subscribed on node B by itself
        assert conn.state is ConnectionState.CONNECTED


@pytest.mark.broker
async def test_mpu_headless_keeps_offline_messages_across_a_process_restart(
    rxmqtt_mosquitto: MosquittoBroker, rxmqtt_fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    """The designed-for fault: a WAN outage, during which the gateway process restarts. With
    a persistent store nothing published meanwhile is lost, and it is sent in order."""
    db = tmp_path / "gateway-queue.db"
    settings = settings_for(rxmqtt_fault_proxy.host, rxmqtt_fault_proxy.port, "gw")
    listener = Connection(settings_for(rxmqtt_mosquitto.host, rxmqtt_mosquitto.port, "listener"))
    got = Recorder(listener.messages("gw/#", qos=1))
    async with listener:
        await listener.wait_for(ConnectionState.CONNECTED, 5)
        first = mpu_headless().with_store(SqliteStore(db)).connect(settings)
        async with first:
            await first.wait_for(ConnectionState.CONNECTED, 5)
            await until_delivered(first, got, "gw/probe")
            await first.publish("gw/data", b"1:online", qos=1)
            rxmqtt_fault_proxy.refuse()
            rxmqtt_fault_proxy.reset()  # the WAN goes away
            await first.wait_for(ConnectionState.RECONNECTING, 5)
            for n in range(2, 51):
                first.publish("gw/data", f"{n}:offline".encode(), qos=1)
            stats = Recorder(first.queue_stats)
            assert stats.items[-1].depth == 49
        # the process restarted while offline; a new one opens the same store
        rxmqtt_fault_proxy.accept()
        second = mpu_headless().with_store(SqliteStore(db)).connect(settings)
        second_stats = Recorder(second.queue_stats)
        assert second_stats.items[-1].depth == 49, "reloaded from the store"
        async with second:
            await second.wait_for(ConnectionState.CONNECTED, 10)
            await got.wait_until(lambda ms: len(numbers(ms, "gw/data")) >= 50, 10, "all 50")
            await second_stats.wait_until(
                lambda s: s[-1].depth == 0 and s[-1].in_flight == 0, 5, "drained"
            )
        assert numbers(got.items, "gw/data") == list(range(1, 51)), "none lost, FIFO order"


@pytest.mark.broker
async def test_mpu_gui_under_a_blackholed_network_never_blocks_and_keeps_the_newest(
    rxmqtt_mosquitto: MosquittoBroker, rxmqtt_fault_proxy: FaultProxy
) -> None:
    """The designed-for fault: Wi-Fi that silently stops forwarding. ``publish()`` returns at
    once however much is published, the bounded queue keeps the newest messages (the oldest
    are reported dropped) and, when the network returns, the newest is sent first."""
    keep_alive = 1  # the preset's 10 s, shortened to keep the test fast; the rest is the preset
    value = mpu_gui(keep_alive=keep_alive)
    limit = value.queue.max_messages
    assert limit is not None
    conn = value.connect(settings_for(rxmqtt_fault_proxy.host, rxmqtt_fault_proxy.port, "gui"))
    dropped = Recorder(conn.dropped)
    stats = Recorder(conn.queue_stats)
    listener = Connection(
        settings_for(rxmqtt_mosquitto.host, rxmqtt_mosquitto.port, "panel-listener")
    )
    got = Recorder(listener.messages("panel/#", qos=1))
    async with conn, listener:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        await listener.wait_for(ConnectionState.CONNECTED, 5)
        await until_delivered(conn, got, "panel/probe")
        rxmqtt_fault_proxy.blackhole()
        await conn.wait_for(ConnectionState.RECONNECTING, 3 * keep_alive)
        loop = asyncio.get_running_loop()
        total = limit + 200
        started = loop.time()
        for n in range(1, total + 1):
            conn.publish("panel/setpoint", f"{n}:x".encode(), qos=1)
        spent = loop.time() - started
        assert spent < 1.0, f"{total} publishes took {spent:.2f}s: publish() must not block"
        await dropped.wait_for_count(total - limit, 5)
        gone = [int(d.message.payload.split(b":")[0]) for d in dropped.items]
        assert gone == list(range(1, total - limit + 1)), "the oldest were dropped"
        assert {d.reason for d in dropped.items} == {DropReason.OVERFLOW}
        assert max(s.depth for s in stats.items) <= limit
        rxmqtt_fault_proxy.pass_through()
        rxmqtt_fault_proxy.reset()  # the stale attempt dies with the old Wi-Fi association
        await conn.wait_for(ConnectionState.CONNECTED, 20)
        await got.wait_until(lambda ms: len(numbers(ms, "panel/setpoint")) >= limit, 15, "all")
    received = numbers(got.items, "panel/setpoint")
    assert received[0] == total, "LIFO: the newest setpoint arrives first"
    assert sorted(received) == list(range(total - limit + 1, total + 1)), "exactly the newest"


@pytest.mark.broker
async def test_mcu_headless_drops_qos0_offline_and_never_exceeds_its_byte_budget(
    rxmqtt_mosquitto: MosquittoBroker, rxmqtt_fault_proxy: FaultProxy
) -> None:
    """The designed-for fault: the device's network goes away. QoS 0 is dropped at once, QoS 1
    waits within the byte budget (oldest dropped when full) and goes out in order afterwards."""
    value = mcu_headless()
    budget, max_messages = value.queue.max_bytes, value.queue.max_messages
    assert budget is not None
    assert max_messages is not None
    conn = value.connect(settings_for(rxmqtt_fault_proxy.host, rxmqtt_fault_proxy.port, "mcu"))
    dropped: Recorder[DroppedMessage] = Recorder(conn.dropped)
    stats: Recorder[QueueStats] = Recorder(conn.queue_stats)
    listener = Connection(
        settings_for(rxmqtt_mosquitto.host, rxmqtt_mosquitto.port, "mcu-listener")
    )
    got = Recorder(listener.messages("dev/#", qos=1))
    async with conn, listener:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        await listener.wait_for(ConnectionState.CONNECTED, 5)
        await until_delivered(conn, got, "dev/probe")
        rxmqtt_fault_proxy.refuse()
        rxmqtt_fault_proxy.reset()
        await conn.wait_for(ConnectionState.RECONNECTING, 5)
        for n in range(20):
            conn.publish("dev/telemetry", f"{n}:t".encode(), qos=0)
        qos0_dropped = [d for d in dropped.items if d.reason is DropReason.QOS0_OFFLINE]
        assert len(qos0_dropped) == 20, "QoS 0 is dropped while offline, and reported"
        payload = b":" + b"x" * 1000
        for n in range(1, 61):
            conn.publish("dev/alarm", f"{n}".encode() + payload, qos=1)
        assert max(s.bytes for s in stats.items) <= budget, "never over the byte budget"
        assert max(s.depth for s in stats.items) <= max_messages
        kept = stats.items[-1].depth
        assert 0 < kept < 60
        overflowed = [d for d in dropped.items if d.reason is DropReason.OVERFLOW]
        assert len(overflowed) == 60 - kept
        rxmqtt_fault_proxy.accept()
        await conn.wait_for(ConnectionState.CONNECTED, 15)
        await got.wait_until(lambda ms: len(numbers(ms, "dev/alarm")) >= kept, 10, "drained")
    assert numbers(got.items, "dev/alarm") == list(range(61 - kept, 61)), "newest kept, FIFO"
    assert not numbers(got.items, "dev/telemetry")


def test_apply_on_mqtt_311_sets_only_what_3_1_1_has() -> None:
    named = ConnectionSettings(host="h", client_id="dev", protocol_version=4)
    applied = mcu_headless().apply(named)
    assert applied.keep_alive == mcu_headless().keep_alive
    assert applied.connect_timeout == mcu_headless().connect_timeout
    assert (applied.clean_start, applied.session_expiry) == (False, 0xFFFFFFFF)
    assert (applied.receive_maximum, applied.maximum_packet_size) == (None, None)
