"""MQTT 5 enhanced authentication on the wire, against the scripted peer (Mosquitto has no
enhanced authentication without a plugin): challenge rounds before CONNACK, refusals,
re-authentication on demand and on a rotated token file, a refused re-authentication, and the
client's own refusals of a server that breaks the rules. Each case checks both sides: what the
peer saw on the wire and what the application saw on its streams."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from rxmqtt import (
    Authenticator,
    Backoff,
    Connected,
    ConnectFailed,
    Connection,
    ConnectionSettings,
    ConnectionState,
    Disconnect,
    Disconnected,
    DisconnectSource,
    GaveUp,
    K8sSatAuthenticator,
    LifecycleEvent,
    Message,
    Reauthenticated,
    ReauthenticationError,
    ReconnectPolicy,
)
from rxmqtt.testing._peer import (
    AUTH,
    DISCONNECT,
    PUBLISH,
    SUBSCRIBE,
    PeerLink,
    ScriptedPeer,
    ack,
    auth,
    auth_data,
    auth_method,
    connack,
    connect_auth,
    disconnect,
    parse_auth,
    parse_publish,
    parse_request,
    properties,
    publish,
    reason_string,
    reply,
)
from rxmqtt.testing.recorder import Recorder
from tests._helpers import FAST_NO_JITTER as FAST

TIMEOUT = 10.0
METHOD = "TEST-CHALLENGE"


class Doubler(Authenticator):
    """A challenge-response method for the tests: answers each challenge with it doubled, and
    records the challenges it was given."""

    method = METHOD

    def __init__(self, token: bytes = b"hello") -> None:
        self.token = token
        self.challenges: list[bytes | None] = []

    def initial_data(self) -> bytes:
        return self.token

    def on_challenge(self, data: bytes | None) -> bytes:
        self.challenges.append(data)
        return (data or b"") * 2


def _auth_props(data: bytes, method: str = METHOD) -> bytes:
    return properties(auth_method(method), auth_data(data))


def _settings(port: int, authenticator: Authenticator, **extra: object) -> ConnectionSettings:
    return ConnectionSettings(
        host="127.0.0.1",
        port=port,
        client_id="enhanced-auth",
        authenticator=authenticator,
        **extra,  # type: ignore[arg-type]
    )


def _only_closed_by_the_app(events: list[LifecycleEvent]) -> bool:
    """No attempt failed and the one connection ended when the test closed it."""
    ends = [e.disconnect.source for e in events if isinstance(e, Disconnected | ConnectFailed)]
    return ends == [DisconnectSource.USER]


class Wire:
    """What the peer saw: each CONNECT's and AUTH's enhanced-authentication fields, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int | None, str | None, bytes | None]] = []
        self.changed = asyncio.Event()

    def record(self, kind: str, raw: bytes) -> None:
        fields = connect_auth(raw) if kind == "CONNECT" else parse_auth(raw)
        self.seen.append((kind, fields.reason_code, fields.method, fields.data))
        self.changed.set()

    async def wait_for(self, count: int) -> None:
        async def enough() -> None:
            while len(self.seen) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(enough(), TIMEOUT)


async def _serve_with_reauth(
    link: PeerLink, wire: Wire, *, challenge: bytes | None, method: str = METHOD
) -> None:
    """A broker after CONNACK: grants SUBSCRIBEs, acknowledges QoS 1 PUBLISHes and echoes them
    back, and answers each AUTH Re-authenticate (with one challenge round when ``challenge``)
    with AUTH Success."""
    while True:
        raw = await link.read()
        kind = raw[0] >> 4
        if kind == SUBSCRIBE:
            link.send(reply(parse_request(raw)))
        elif kind == PUBLISH:
            sent = parse_publish(raw)
            if sent.qos:
                link.send(ack(4, sent.packet_id))
            link.send(publish(sent.topic, sent.payload))
        elif kind == AUTH:
            wire.record("AUTH", raw)
            if challenge is not None and parse_auth(raw).reason_code == 0x19:
                link.send(auth(0x18, _auth_props(challenge, method)))
            else:
                link.send(auth(0x00, properties(auth_method(method))))
        elif kind == DISCONNECT:
            return


async def _echo(conn: Connection, topic: str) -> tuple[str, Recorder[Message]]:
    """Subscribe to ``topic``, which the peer echoes back (see ``_serve_with_reauth``)."""
    got: Recorder[Message] = Recorder(conn.messages(topic, qos=1))
    await asyncio.wait_for(conn.subscribe(topic, qos=1), TIMEOUT)
    return topic, got


async def _echoed(conn: Connection, echo: tuple[str, Recorder[Message]], payload: bytes) -> None:
    """A QoS 1 publish is acknowledged and comes back: messages flow both ways."""
    topic, got = echo
    await asyncio.wait_for(conn.publish(topic, payload, qos=1), TIMEOUT)
    await got.wait_for_item(lambda m: m.payload == payload, TIMEOUT)


async def test_connect_with_challenge_rounds_then_connack() -> None:
    """CONNECT carries the method and the initial data; two AUTH Continue rounds are answered
    by the authenticator (in order, with its answers on the wire); CONNACK connects."""
    wire = Wire()

    async def script(link: PeerLink) -> None:
        wire.record("CONNECT", link.connect)
        for challenge in (b"abc", b"xyz"):
            link.send(auth(0x18, _auth_props(challenge)))
            wire.record("AUTH", await link.read())
        link.send(connack(props=properties(auth_method(METHOD))))
        await _serve_with_reauth(link, wire, challenge=None)

    doubler = Doubler()
    async with ScriptedPeer(script) as peer:
        conn = Connection(_settings(peer.port, doubler), reconnect=FAST)
        events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
        async with conn:
            await conn.wait_for(ConnectionState.CONNECTED, TIMEOUT)
            await _echoed(conn, await _echo(conn, "auth/echo"), b"through")
    assert wire.seen == [
        ("CONNECT", None, METHOD, b"hello"),
        ("AUTH", 0x18, METHOD, b"abcabc"),
        ("AUTH", 0x18, METHOD, b"xyzxyz"),
    ]
    assert doubler.challenges == [b"abc", b"xyz"]
    assert peer.connections == 1
    assert not any(isinstance(e, ConnectFailed) for e in events.items)


@pytest.mark.parametrize(
    ("code", "name"), [(0x87, "Not authorized"), (0x8C, "Bad authentication method")]
)
async def test_a_refused_token_is_fatal_without_a_retry_storm(code: int, name: str) -> None:
    """CONNACK 0x87 / 0x8C after a challenge round: one fatal ConnectFailed, GaveUp, FAILED,
    and exactly one CONNECT on the wire (the same token would be refused again)."""
    wire = Wire()

    async def script(link: PeerLink) -> None:
        wire.record("CONNECT", link.connect)
        link.send(auth(0x18, _auth_props(b"prove-it")))
        wire.record("AUTH", await link.read())
        link.send(connack(code, props=properties(reason_string("token rejected"))))
        await link.drain()

    async with ScriptedPeer(script) as peer:
        conn = Connection(_settings(peer.port, Doubler(b"bad-token")), reconnect=FAST)
        events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
        async with conn:
            await events.wait_for_item(lambda e: isinstance(e, GaveUp), TIMEOUT, "GaveUp")
            assert conn.state is ConnectionState.FAILED
    failed = [e for e in events.items if isinstance(e, ConnectFailed)]
    assert len(failed) == 1
    assert failed[0].disconnect.reason_code == code
    assert failed[0].disconnect.source is DisconnectSource.SERVER
    assert failed[0].disconnect.fatal
    assert name in failed[0].reason
    assert peer.connections == 1
    assert wire.seen == [
        ("CONNECT", None, METHOD, b"bad-token"),
        ("AUTH", 0x18, METHOD, b"prove-itprove-it"),
    ]


async def test_reauthenticate_on_demand_keeps_the_connection() -> None:
    """``reauthenticate()``: AUTH 0x19 with fresh data, a challenge round, AUTH Success; the
    result and ``lifecycle`` say Reauthenticated; the link (one TCP connection) stays up."""
    wire = Wire()

    async def script(link: PeerLink) -> None:
        wire.record("CONNECT", link.connect)
        link.send(connack())
        await _serve_with_reauth(link, wire, challenge=b"again")

    doubler = Doubler(b"first")
    async with ScriptedPeer(script) as peer:
        conn = Connection(_settings(peer.port, doubler), reconnect=FAST)
        events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
        states: Recorder[ConnectionState] = Recorder(conn.connection_state)
        async with conn:
            await conn.wait_for(ConnectionState.CONNECTED, TIMEOUT)
            doubler.token = b"second"
            done = await asyncio.wait_for(conn.reauthenticate(), TIMEOUT)
            assert done == Reauthenticated(f"127.0.0.1:{peer.port}", rounds=1)
            assert conn.state is ConnectionState.CONNECTED
            # twice in a row: each call gets its own exchange
            doubler.token = b"third"
            first, second = conn.reauthenticate(), conn.reauthenticate()
            await asyncio.wait_for(first, TIMEOUT)
            await asyncio.wait_for(second, TIMEOUT)
    assert wire.seen[:3] == [
        ("CONNECT", None, METHOD, b"first"),
        ("AUTH", 0x19, METHOD, b"second"),
        ("AUTH", 0x18, METHOD, b"againagain"),
    ]
    assert [s[:2] for s in wire.seen[3:]] == [("AUTH", 0x19), ("AUTH", 0x18)] * 2
    assert peer.connections == 1
    assert sum(isinstance(e, Reauthenticated) for e in events.items) == 3
    assert _only_closed_by_the_app(events.items)
    assert [s.name for s in states.items] == ["DISCONNECTED", "CONNECTING", "CONNECTED", "CLOSED"]


@pytest.mark.parametrize("code", [0x87, 0x8C])
async def test_a_refused_reauthentication_is_a_disconnect(code: int) -> None:
    """The server answers AUTH Re-authenticate with DISCONNECT: ``reauthenticate()`` raises
    ReauthenticationError carrying that Disconnect, which is also on ``disconnects``; the
    reconnect policy decides (both codes are fatal: FAILED)."""

    async def script(link: PeerLink) -> None:
        link.send(connack())
        raw = await link.read_until(AUTH)
        assert parse_auth(raw).reason_code == 0x19
        link.send(disconnect(code, properties(reason_string("token expired"))))
        await link.close()

    async with ScriptedPeer(script) as peer:
        conn = Connection(_settings(peer.port, Doubler()), reconnect=FAST)
        disconnects: Recorder[Disconnect] = Recorder(conn.disconnects)
        async with conn:
            await conn.wait_for(ConnectionState.CONNECTED, TIMEOUT)
            with pytest.raises(ReauthenticationError) as raised:
                await asyncio.wait_for(conn.reauthenticate(), TIMEOUT)
            await conn.wait_for(ConnectionState.FAILED, TIMEOUT)
    error = raised.value
    assert error.disconnect is not None
    assert error.disconnect.reason_code == code
    assert error.disconnect.source is DisconnectSource.SERVER
    assert "token expired" in str(error)
    reported = disconnects.items[0]
    assert (reported.reason_code, reported.reason, reported.source) == (
        code,
        error.disconnect.reason,
        DisconnectSource.SERVER,
    )
    assert reported.fatal  # the policy's verdict (the error's Disconnect is the engine's)
    assert peer.connections == 1


async def test_a_reauthentication_left_unanswered_times_out() -> None:
    """A server that never answers AUTH Re-authenticate: after ``connect_timeout`` the client
    gives up (DISCONNECT 0x80 on the wire) and the link ends as the client's doing; the policy
    reconnects (the next CONNECT authenticates afresh)."""
    seen_disconnect = asyncio.Event()

    async def silent(link: PeerLink) -> None:
        link.send(connack())
        await link.read_until(AUTH)
        raw = await link.read_until(DISCONNECT)
        assert raw[2] == 0x80
        seen_disconnect.set()

    async def fine(link: PeerLink) -> None:
        link.send(connack())
        await link.serve()

    async with ScriptedPeer(silent, fine) as peer:
        conn = Connection(_settings(peer.port, Doubler(), connect_timeout=1.0), reconnect=FAST)
        events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
        async with conn:
            await conn.wait_for(ConnectionState.CONNECTED, TIMEOUT)
            with pytest.raises(ReauthenticationError) as raised:
                await asyncio.wait_for(conn.reauthenticate(), TIMEOUT)
            await asyncio.wait_for(seen_disconnect.wait(), TIMEOUT)
            await events.wait_until(
                lambda es: sum(isinstance(e, Connected) for e in es) == 2, TIMEOUT, "reconnect"
            )
    assert raised.value.disconnect is not None
    assert raised.value.disconnect.source is DisconnectSource.CLIENT
    assert "within 1.0s" in raised.value.disconnect.reason


async def test_reauthenticate_while_not_connected_fails_at_once() -> None:
    """No connection to re-authenticate: a ReauthenticationError at once, nothing hangs; and
    settings without enhanced authentication refuse the call."""

    async def refusing(link: PeerLink) -> None:
        link.send(connack(0x88))  # Server unavailable: retried, never connected

    async with ScriptedPeer(refusing) as peer:
        conn = Connection(_settings(peer.port, Doubler()), reconnect=FAST)
        async with conn:
            with pytest.raises(ReauthenticationError, match="not connected"):
                await asyncio.wait_for(conn.reauthenticate(), TIMEOUT)
    plain = Connection(ConnectionSettings(host="127.0.0.1", client_id="plain"))
    with pytest.raises(RuntimeError, match="reauthenticate: the settings have no enhanced"):
        plain.reauthenticate()


@pytest.mark.parametrize(
    ("server_says", "code", "words"),
    [
        pytest.param(auth(0x18, _auth_props(b"x", "OTHER")), 0x8C, "'OTHER'", id="other-method"),
        pytest.param(auth(0x00), 0x82, "AUTH Success during CONNECT", id="success-not-connack"),
        pytest.param(auth(0x19, _auth_props(b"x")), 0x82, "only a client", id="server-reauth"),
        pytest.param(auth(0x18, b"\x03\x15\x00"), 0x81, "Malformed", id="malformed-auth"),
    ],
)
async def test_the_client_refuses_an_auth_that_breaks_the_rules(
    server_says: bytes, code: int, words: str
) -> None:
    """An AUTH the rules forbid: the client sends DISCONNECT with the reason code and the
    attempt fails as the client's doing, naming what was wrong."""
    goodbye: list[bytes] = []

    async def script(link: PeerLink) -> None:
        link.send(server_says)
        goodbye.append(await link.read_until(DISCONNECT))

    async with ScriptedPeer(script) as peer:
        conn = Connection(
            _settings(peer.port, Doubler()),
            reconnect=ReconnectPolicy(backoff=Backoff(initial=0.05), max_attempts=1),
        )
        events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
        async with conn:
            failed = await events.wait_for_item(
                lambda e: isinstance(e, ConnectFailed), TIMEOUT, "ConnectFailed"
            )
    assert isinstance(failed, ConnectFailed)
    assert failed.disconnect.source is DisconnectSource.CLIENT
    assert failed.disconnect.reason_code == code
    assert words in failed.reason
    assert goodbye, "no DISCONNECT"
    assert goodbye[0][2] == code


async def test_a_rotated_token_file_reauthenticates_without_dropping_the_link(
    tmp_path: Path,
) -> None:
    """K8S-SAT with a token file: CONNECT carries token 1; the file is replaced (as Kubernetes
    does, atomically) with token 2: the peer gets AUTH Re-authenticate with token 2's bytes,
    the connection stays up (one TCP connection, no Disconnected) and messages keep flowing
    both ways before and after."""
    token_file = tmp_path / "token"
    token_file.write_bytes(b"sat-token-1")
    wire = Wire()

    async def script(link: PeerLink) -> None:
        wire.record("CONNECT", link.connect)
        link.send(connack())
        await _serve_with_reauth(link, wire, challenge=None, method="K8S-SAT")

    sat = K8sSatAuthenticator(token_file, poll_interval=0.05)
    async with ScriptedPeer(script) as peer:
        conn = Connection(
            ConnectionSettings(
                host="127.0.0.1", port=peer.port, client_id="sat", authenticator=sat
            ),
            reconnect=FAST,
        )
        events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
        async with conn:
            await conn.wait_for(ConnectionState.CONNECTED, TIMEOUT)
            echo = await _echo(conn, "sat/echo")
            await _echoed(conn, echo, b"before")

            rotated = tmp_path / "token.new"
            rotated.write_bytes(b"sat-token-2")
            os.replace(rotated, token_file)
            await wire.wait_for(2)
            await events.wait_for_item(
                lambda e: isinstance(e, Reauthenticated), TIMEOUT, "Reauthenticated"
            )

            await _echoed(conn, echo, b"after")
            assert conn.state is ConnectionState.CONNECTED
    assert wire.seen == [
        ("CONNECT", None, "K8S-SAT", b"sat-token-1"),
        ("AUTH", 0x19, "K8S-SAT", b"sat-token-2"),
    ]
    assert peer.connections == 1
    assert _only_closed_by_the_app(events.items)
