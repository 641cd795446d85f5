"""MQTT over WebSockets against Mosquitto's WebSockets listener: connect, publish and subscribe,
the FaultProxy's black hole and reset, a broker restart with QoS 1 publishes in flight, ``wss``,
and an upgrade the server refuses (a small HTTP server in the test)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable

import pytest

from rxmqtt import (
    Connected,
    ConnectFailed,
    Connection,
    ConnectionSettings,
    ConnectionState,
    LifecycleEvent,
    Message,
    PublishResult,
    WebSocketTransport,
)
from rxmqtt.testing import BrokerConfig, FaultProxy, MosquittoBroker, TlsFiles
from rxmqtt.testing.plugin import BrokerFactory, ProxyFactory
from rxmqtt.testing.recorder import Recorder
from tests._helpers import FAST, until, wait_log

pytestmark = pytest.mark.broker

DEADLINE = 10.0

_ids = itertools.count()


def ws_settings(host: str, port: int, name: str, **overrides: object) -> ConnectionSettings:
    return ConnectionSettings(
        host=host,
        port=port,
        client_id=f"ws-{name}-{next(_ids)}",
        transport="websockets",
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
def ws_broker(rxmqtt_mosquitto_factory: BrokerFactory) -> MosquittoBroker:
    return rxmqtt_mosquitto_factory(BrokerConfig(websockets=True, persistence=True))


@pytest.fixture
def ws_proxy(ws_broker: MosquittoBroker, rxmqtt_fault_proxy_factory: ProxyFactory) -> FaultProxy:
    """A FaultProxy in front of the broker's WebSockets port (it proxies the TCP under it)."""
    return rxmqtt_fault_proxy_factory(ws_broker.host, ws_broker.websockets_port)


async def subscribed(conn: Connection, topic: str) -> Recorder[Message]:
    """A recorder of ``topic`` on ``conn`` once the broker granted the subscription."""
    got: Recorder[Message] = Recorder(conn.messages(topic, qos=1))
    await conn.subscribe(topic, qos=1)
    return got


def payloads(got: Recorder[Message]) -> set[bytes]:
    return {m.payload for m in got.items}


# ---------------------------------------------------------------- plain use


async def test_connect_publish_and_subscribe_over_websockets(ws_broker: MosquittoBroker) -> None:
    conn = Connection(ConnectionSettings.from_url(f"{ws_broker.websockets_url}?client_id=ws-a"))
    events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, DEADLINE)
        got = await subscribed(conn, "ws/a")
        results = await asyncio.gather(
            *(conn.publish("ws/a", f"m{i}".encode(), qos=q) for i, q in enumerate((0, 1, 2)))
        )
        assert all(isinstance(r, PublishResult) and r.reason_code == 0 for r in results)
        await got.wait_until(lambda ms: len(ms) == 3, DEADLINE, "three messages back")
    assert [m.payload for m in got.items] == [b"m0", b"m1", b"m2"]
    connected = next(e for e in events.items if isinstance(e, Connected))
    assert connected.endpoint == f"127.0.0.1:{ws_broker.websockets_port}"
    await wait_log(ws_broker, "New client connected from 127.0.0.1")


async def test_a_tcp_client_and_a_websocket_client_talk_through_one_broker(
    ws_broker: MosquittoBroker,
) -> None:
    tcp = Connection(ConnectionSettings(host=ws_broker.host, port=ws_broker.port))
    ws = Connection(ws_settings(ws_broker.host, ws_broker.websockets_port, "mix"))
    async with tcp, ws:
        await tcp.wait_for(ConnectionState.CONNECTED, DEADLINE)
        await ws.wait_for(ConnectionState.CONNECTED, DEADLINE)
        got = await subscribed(tcp, "mix/#")
        await ws.publish("mix/1", b"from a websocket", qos=1)
        message = await got.wait_for_item(lambda m: True, DEADLINE)
    assert message.payload == b"from a websocket"


# ---------------------------------------------------------------- faults


async def _nothing_lost_across(
    broker: MosquittoBroker,
    proxy: FaultProxy,
    cut: Callable[[], None],
    heal: Callable[[], None],
    keep_alive: int,
) -> None:
    """QoS 1 publishes made before ``cut``, between it and ``heal``, and after the reconnect
    all reach a subscriber."""
    sub = Connection(ws_settings(broker.host, broker.websockets_port, "sub"))
    pub = Connection(
        ws_settings(proxy.host, proxy.port, "pub", keep_alive=keep_alive, session_expiry=300),
        reconnect=FAST,
    )
    pub_events: Recorder[LifecycleEvent] = Recorder(pub.lifecycle)
    async with sub, pub:
        await sub.wait_for(ConnectionState.CONNECTED, DEADLINE)
        await pub.wait_for(ConnectionState.CONNECTED, DEADLINE)
        got = await subscribed(sub, "cut/#")
        before = [pub.publish("cut/x", f"before-{i}".encode(), qos=1) for i in range(3)]
        await asyncio.gather(*before)
        cut()
        during = [Recorder(pub.publish("cut/x", f"during-{i}".encode(), qos=1)) for i in range(3)]
        await until(lambda: pub.state is not ConnectionState.CONNECTED, "the cut seen", DEADLINE)
        heal()
        await pub.wait_for(ConnectionState.CONNECTED, DEADLINE)
        after = [pub.publish("cut/x", f"after-{i}".encode(), qos=1) for i in range(3)]
        await asyncio.gather(*after)
        for outcome in during:
            await outcome.wait_done(DEADLINE)
        expected = {f"{w}-{i}".encode() for w in ("before", "during", "after") for i in range(3)}
        await got.wait_until(lambda _: payloads(got) >= expected, DEADLINE, "every message")
    assert sum(isinstance(e, Connected) for e in pub_events.items) >= 2
    assert proxy.accepted >= 2  # the reconnect went through the proxy again


async def test_a_black_hole_is_detected_and_the_reconnect_loses_nothing(
    ws_broker: MosquittoBroker, ws_proxy: FaultProxy
) -> None:
    """The live link goes silent (the keep-alive notices); new connections pass. A proxy-wide
    black hole would also swallow a reconnect's upgrade request if it started before the heal,
    and that attempt would wait its whole connect_timeout."""

    def silence_the_link() -> None:
        (link,) = ws_proxy.connections
        link.blackhole()

    await _nothing_lost_across(ws_broker, ws_proxy, silence_the_link, lambda: None, keep_alive=1)


async def test_a_reset_reconnects_and_loses_nothing(
    ws_broker: MosquittoBroker, ws_proxy: FaultProxy
) -> None:
    def reset() -> None:
        ws_proxy.refuse()  # the "during" publishes meet a link that stays down a while
        ws_proxy.reset()

    await _nothing_lost_across(ws_broker, ws_proxy, reset, ws_proxy.accept, keep_alive=30)


async def test_a_broker_restart_with_qos1_in_flight_loses_nothing(
    ws_broker: MosquittoBroker, ws_proxy: FaultProxy
) -> None:
    """Publishes written into a dead link (never acknowledged) while the broker restarts are
    re-sent on the next connection; the subscriber's persistent session keeps what it missed."""
    sub = Connection(
        ws_settings(ws_broker.host, ws_broker.websockets_port, "rsub", session_expiry=300),
        reconnect=FAST,
    )
    pub = Connection(
        ws_settings(ws_proxy.host, ws_proxy.port, "rpub", session_expiry=300), reconnect=FAST
    )
    async with sub, pub:
        await sub.wait_for(ConnectionState.CONNECTED, DEADLINE)
        await pub.wait_for(ConnectionState.CONNECTED, DEADLINE)
        got = await subscribed(sub, "restart/#")
        (link,) = ws_proxy.wait_for_connections(1)
        link.blackhole()
        written = link.bytes_from_client
        in_flight = [Recorder(pub.publish("restart/x", f"{i}".encode(), qos=1)) for i in range(5)]
        # five 17-byte PUBLISH packets (and their WebSocket framing) left the client
        await until(
            lambda: link.bytes_from_client - written >= 5 * 17, "the publishes written", DEADLINE
        )
        assert not any(r.items or r.completed for r in in_flight)  # none acknowledged
        ws_broker.stop()
        ws_broker.start()
        link.reset()
        for outcome in in_flight:
            await outcome.wait_done(DEADLINE)
        assert all(isinstance(r.items[-1], PublishResult) for r in in_flight)
        expected = {f"{i}".encode() for i in range(5)}
        await got.wait_until(lambda _: payloads(got) >= expected, DEADLINE, "every message")
        assert sub.state is ConnectionState.CONNECTED


# ---------------------------------------------------------------- wss


async def test_wss_with_the_harness_certificates(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles
) -> None:
    broker = rxmqtt_mosquitto_factory(BrokerConfig(websockets=True, tls=rxmqtt_tls_files))
    url = f"{broker.websockets_url}?client_id=wss-1&ca_file={rxmqtt_tls_files.ca_file}"
    assert url.startswith("wss://")
    conn = Connection(ConnectionSettings.from_url(url))
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, DEADLINE)
        got = await subscribed(conn, "wss/a")
        await conn.publish("wss/a", b"over wss", qos=1)
        message = await got.wait_for_item(lambda m: True, DEADLINE)
    assert message.payload == b"over wss"


# ---------------------------------------------------------------- a refused upgrade


async def test_a_refused_upgrade_is_a_failed_attempt_that_names_the_status_not_the_secret() -> None:
    requests: list[bytes] = []

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = WebSocketTransport(
        path="/mqtt?token=query-secret", headers={"Authorization": "Bearer header-secret"}
    )
    settings = ConnectionSettings(
        host="127.0.0.1", port=port, transport=transport, client_id="ws-refused"
    )
    conn = Connection(settings, reconnect=FAST)
    events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
    async with server, conn:
        failed = await events.wait_for_item(lambda e: isinstance(e, ConnectFailed), DEADLINE)
    assert isinstance(failed, ConnectFailed)
    assert "401 Unauthorized" in failed.reason
    assert "/mqtt" in failed.reason
    for secret in ("query-secret", "header-secret"):
        assert secret not in failed.reason
        assert secret not in repr(settings)
    request = requests[0].decode("latin-1")
    assert request.startswith("GET /mqtt?token=query-secret HTTP/1.1\r\n")
    assert "\r\nAuthorization: Bearer header-secret\r\n" in request
    assert f"\r\nHost: 127.0.0.1:{port}\r\n" in request
    assert "\r\nSec-WebSocket-Protocol: mqtt\r\n" in request


async def test_header_providers_are_called_on_every_attempt(ws_broker: MosquittoBroker) -> None:
    tokens = iter(f"token-{i}" for i in itertools.count())
    transport = WebSocketTransport(headers={"Authorization": lambda: f"Bearer {next(tokens)}"})
    settings = ws_settings(ws_broker.host, ws_broker.websockets_port, "rotate")
    conn = Connection(
        ConnectionSettings(**{**_fields(settings), "transport": transport}), reconnect=FAST
    )
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, DEADLINE)
        ws_broker.restart()
        await until(
            lambda: conn.state is not ConnectionState.CONNECTED, "the restart seen", DEADLINE
        )
        await conn.wait_for(ConnectionState.CONNECTED, DEADLINE)
    assert next(tokens) == "token-2"  # one per attempt: 0 and 1 were used


def _fields(settings: ConnectionSettings) -> dict[str, object]:
    return {
        name: getattr(settings, name)
        for name in ("host", "port", "client_id", "connect_timeout", "keep_alive")
    }


async def test_a_websocket_session_logs_no_header_or_query_secret(
    ws_broker: MosquittoBroker, ws_proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """Connect, reconnect after a reset and publish with every logger at DEBUG: no header
    value or path query shows in a log record, a lifecycle event or the settings."""
    caplog.set_level(logging.DEBUG)
    for name in ("rxmqtt", "paho", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    header_secret, query_secret = "hdr-5ecret-42", "qry-5ecret-43"
    transport = WebSocketTransport(
        path=f"/mqtt?token={query_secret}", headers={"Authorization": f"Bearer {header_secret}"}
    )
    settings = ConnectionSettings(
        host=ws_proxy.host, port=ws_proxy.port, client_id="ws-secret", transport=transport
    )
    conn = Connection(settings, reconnect=FAST)
    events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, DEADLINE)
        ws_proxy.reset()
        await events.wait_until(
            lambda es: sum(isinstance(e, Connected) for e in es) >= 2, DEADLINE, "the reconnect"
        )
        await conn.publish("secret/x", b"payload", qos=1)
    shown = [repr(settings), repr(conn), *map(repr, events.items), *map(str, events.items)]
    for record in caplog.records:
        shown += [record.getMessage(), repr(record.args), record.exc_text or ""]
    for secret in (header_secret, query_secret):
        assert not [text for text in shown if secret in text]
