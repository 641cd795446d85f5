"""Security: TLS verification is on unless explicitly turned off (with a warning), and secrets --
passwords (static, from a provider, from ``password_file``), enhanced-auth tokens
(``auth_data``) and TLS key passwords -- never appear in logs, ``repr()``s or error messages.

``tests/test_settings.py`` pins the masking in each settings ``repr`` and the warning of a
context built with verification off, ``tests/test_tls.py`` the TLS failures against a real
broker; this file checks the defaults along every way settings are built, and runs complete
sessions -- connect, a refused CONNACK, reconnects, publish/subscribe, TLS with an encrypted
client key, a wrong key password, enhanced auth the broker refuses, a credential file that
vanishes -- with **all** logging captured at DEBUG, then searches every log record (message,
arguments, traceback), every ``repr``/``str`` of settings, connection, lifecycle events and
errors for each secret.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rxmqtt import (
    Backoff,
    ConnectFailed,
    Connection,
    ConnectionSettings,
    ConnectionState,
    DisconnectSource,
    GaveUp,
    Jitter,
    LifecycleEvent,
    Message,
    ReconnectPolicy,
    TlsSettings,
)
from rxmqtt.settings import FileSecret
from rxmqtt.testing import BrokerConfig, FaultProxy, MosquittoBroker, TlsFiles
from rxmqtt.testing.recorder import Recorder
from tests._helpers import FAST

TIMEOUT = 15.0

NEVER_FATAL = ReconnectPolicy(
    backoff=Backoff(initial=0.05, maximum=0.2, jitter=Jitter.FULL), is_fatal=lambda _code: False
)


def _secret(kind: str) -> str:
    return f"{kind}-{secrets.token_hex(8)}"


# ---------------------------------------------------------------------------------------------
# TLS verification is the default


def _contexts_built_without_the_flag(tmp_path: Path, rxmqtt_tls_files: TlsFiles) -> dict[str, Any]:
    ca = str(rxmqtt_tls_files.ca_file)
    env = {"AIO_BROKER_HOSTNAME": "broker", "AIO_TLS_CA_FILE": ca}
    return {
        "TlsSettings()": TlsSettings(),
        "TlsSettings(ca_file)": TlsSettings(ca_file=ca),
        "TlsSettings(client cert)": TlsSettings(
            ca_file=ca, cert_file=rxmqtt_tls_files.client_cert, key_file=rxmqtt_tls_files.client_key
        ),
        "from_url mqtts": ConnectionSettings.from_url("mqtts://broker").tls,
        "from_url ssl + ca_file": ConnectionSettings.from_url(f"ssl://broker?ca_file={ca}").tls,
        "from_url tls": ConnectionSettings.from_url("tls://broker:8883").tls,
        "from_env default": ConnectionSettings.from_env(env).tls,
        "from_env USE_TLS=true": ConnectionSettings.from_env(
            {**env, "AIO_MQTT_USE_TLS": "true"}
        ).tls,
    }


def test_tls_settings_default_to_verifying_certificate_and_hostname() -> None:
    tls = TlsSettings()
    assert tls.verify_certificate is True
    assert tls.verify_hostname is True


def test_every_way_of_building_tls_settings_verifies_by_default(
    tmp_path: Path, rxmqtt_tls_files: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name, tls in _contexts_built_without_the_flag(tmp_path, rxmqtt_tls_files).items():
        assert isinstance(tls, TlsSettings), name
        context = tls.ssl_context()
        assert context.verify_mode is ssl.CERT_REQUIRED, name
        assert context.check_hostname is True, name
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2, name
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "no warning when on"


@pytest.mark.parametrize("flag", ["verify_certificate", "verify_hostname"])
@pytest.mark.parametrize("falsy", [0, "", None, "false", "no"])
def test_verification_is_not_turned_off_by_a_falsy_non_bool(flag: str, falsy: object) -> None:
    """Only the explicit ``False`` turns a check off; ``0``, ``""`` or ``None`` are refused."""
    with pytest.raises(TypeError, match=rf"^{flag}: must be a bool"):
        TlsSettings(**{flag: falsy})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "warning"),
    [
        pytest.param(
            lambda: TlsSettings(verify_certificate=False),
            "TLS certificate verification is OFF",
            id="verify_certificate=False",
        ),
        pytest.param(
            lambda: TlsSettings(verify_hostname=False),
            "TLS hostname verification is OFF",
            id="verify_hostname=False",
        ),
        pytest.param(
            lambda: ConnectionSettings.from_url("mqtts://broker?verify_hostname=false").tls,
            "TLS hostname verification is OFF",
            id="from_url verify_hostname=false",
        ),
    ],
)
def test_turning_verification_off_is_explicit_and_logs_a_warning(
    build: Callable[[], TlsSettings], warning: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tls = build()
    context = tls.ssl_context()
    assert not (context.check_hostname and context.verify_mode is ssl.CERT_REQUIRED)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.name for r in warnings] == ["rxmqtt"], [r.getMessage() for r in warnings]
    assert warning in warnings[0].getMessage()


# ---------------------------------------------------------------------------------------------
# secrets never leak: the search


class Evidence:
    """Everything that could carry a secret out: reprs, events, errors, and the log."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []
        self.events: list[Recorder[LifecycleEvent]] = []

    def add(self, what: str, value: object) -> None:
        self.texts.append((f"repr({what})", repr(value)))
        self.texts.append((f"str({what})", str(value)))

    def watch(self, conn: Connection, name: str) -> Recorder[LifecycleEvent]:
        events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
        self.events.append(events)
        self.add(f"{name}.settings", conn.settings)
        self.add(f"{name}.settings.tls", conn.settings.tls)
        self.add(name, conn)
        return events

    def raised(self, what: str, call: Callable[[], object]) -> BaseException:
        try:
            call()
        except Exception as exc:
            self.add(what, exc)
            self.add(f"{what}.args", exc.args)
            return exc
        raise AssertionError(f"{what}: expected an error")

    def leaks(self, secret: str, records: list[logging.LogRecord]) -> list[str]:
        found = [where for where, text in self.texts if secret in text]
        for events in self.events:
            for event in events.items:
                if secret in repr(event) or secret in str(event):
                    found.append(f"lifecycle event {event!r}")
            if events.error is not None and secret in repr(events.error):
                found.append(f"lifecycle error {events.error!r}")
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        for record in records:
            text = formatter.format(record) + repr(record.args) + repr(record.__dict__)
            if secret in text:
                found.append(f"log {record.name} {record.levelname}: {record.getMessage()}")
        return found


@pytest.fixture
def all_logging(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG, paho's included (rxmqtt leaves paho's logging off, but paho logs
    CONNECT properties when it is on, so prove rxmqtt never turns it on)."""
    caplog.set_level(logging.DEBUG)
    for name in ("rxmqtt", "paho", "paho.mqtt", "paho.mqtt.client", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)  # restored at teardown
    return caplog


def _assert_paho_logging_stays_off(conn: Connection) -> None:
    engine = conn._engine
    assert engine is not None
    client = engine._client
    assert client.logger is None, "rxmqtt turned paho's logger on"
    assert client.on_log is None, "rxmqtt routes paho's log somewhere"


async def _round_trip(conn: Connection, topic: str, payload: bytes) -> None:
    got: Recorder[Message] = Recorder(conn.messages(topic, qos=1))
    try:
        for _ in range(int(TIMEOUT / 0.2)):
            await asyncio.wait_for(conn.publish(topic, payload, qos=1), TIMEOUT)
            try:
                await got.wait_for_item(lambda m: m.payload == payload, 0.2)
                return
            except TimeoutError:
                continue
        raise TimeoutError(f"no round trip on {topic}")
    finally:
        got.dispose()


def _encrypted_key(rxmqtt_tls_files: TlsFiles, path: Path, password: str) -> Path:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(
        rxmqtt_tls_files.client_key.read_bytes(), password=None
    )
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password.encode()),
        )
    )
    return path


@pytest.mark.broker
async def test_a_full_session_leaks_no_secret(
    tmp_path: Path, rxmqtt_tls_files: TlsFiles, all_logging: pytest.LogCaptureFixture
) -> None:
    password = _secret("Pa55")
    wrong_password = _secret("Wr0ng")
    file_password = _secret("F1le")
    token = _secret("T0ken")
    key_password = _secret("K3y")
    wrong_key_password = _secret("K3yWr0ng")
    every_secret = [password, wrong_password, file_password, token, key_password]
    every_secret.append(wrong_key_password)
    evidence = Evidence()

    password_file = tmp_path / "bob.password"
    password_file.write_text(file_password + "\n")
    token_file = tmp_path / "token"
    token_file.write_text(token)
    key_file = _encrypted_key(rxmqtt_tls_files, tmp_path / "client.key", key_password)

    plain = MosquittoBroker(
        BrokerConfig(
            users={"alice": password, "bob": file_password},
            acl="user alice\ntopic readwrite #\nuser bob\ntopic readwrite #\n",
        )
    )
    secure = MosquittoBroker(BrokerConfig(tls=rxmqtt_tls_files, require_certificate=True))
    proxy: FaultProxy | None = None
    try:
        await asyncio.to_thread(plain.start)
        await asyncio.to_thread(secure.start)
        proxy = FaultProxy(plain.host, plain.port).start()

        # 1. a password provider: the first attempt is refused (wrong password), the next ones
        #    succeed; a network cut forces one more reconnect (the provider is called again).
        calls: list[int] = []

        def provider() -> str:
            calls.append(1)
            return wrong_password if len(calls) == 1 else password

        alice = Connection(
            ConnectionSettings(
                host=proxy.host,
                port=proxy.port,
                client_id="alice-1",
                username="alice",
                password=provider,
                clean_start=False,
                session_expiry=60,
            ),
            reconnect=NEVER_FATAL,
        )
        alice_events = evidence.watch(alice, "alice")
        async with alice:
            refused = await alice_events.wait_for_item(
                lambda e: isinstance(e, ConnectFailed), TIMEOUT, "the refused CONNACK"
            )
            assert isinstance(refused, ConnectFailed)
            assert refused.disconnect.source is DisconnectSource.SERVER
            await alice.wait_for(ConnectionState.CONNECTED, TIMEOUT)
            _assert_paho_logging_stays_off(alice)
            await _round_trip(alice, "secrets/alice", b"hello")
            await asyncio.to_thread(proxy.reset)
            await alice_events.wait_until(
                lambda es: sum(type(e).__name__ == "Connected" for e in es) >= 2,
                TIMEOUT,
                "the reconnect",
            )
            await _round_trip(alice, "secrets/alice", b"again")
            evidence.add("alice.broker_limits", alice.broker_limits)
        assert len(calls) >= 3, "the provider is asked on every attempt"

        # 2. a password file, re-read per attempt; then it vanishes: a clear, path-naming failure
        bob = Connection(
            ConnectionSettings(
                host=proxy.host,
                port=proxy.port,
                client_id="bob-1",
                username="bob",
                password_file=password_file,
            ),
            reconnect=FAST,
        )
        bob_events = evidence.watch(bob, "bob")
        async with bob:
            await bob.wait_for(ConnectionState.CONNECTED, TIMEOUT)
            await _round_trip(bob, "secrets/bob", b"hi")
            moved = password_file.rename(tmp_path / "elsewhere")
            await asyncio.to_thread(proxy.reset)
            missing = await bob_events.wait_for_item(
                lambda e: isinstance(e, ConnectFailed), TIMEOUT, "the missing file"
            )
            assert isinstance(missing, ConnectFailed)
            assert missing.disconnect.source is DisconnectSource.CLIENT
            assert str(password_file) in missing.reason, missing.reason
            assert "password_file" in missing.reason, missing.reason
            moved.rename(password_file)  # rotation: the next attempt reads it again
            await bob.wait_for(ConnectionState.CONNECTED, TIMEOUT)

        # 3. enhanced authentication the broker does not support: refused, token never shown
        sat = Connection(
            ConnectionSettings(
                host=plain.host,
                port=plain.port,
                client_id="sat-1",
                auth_method="K8S-SAT",
                auth_data=FileSecret(token_file, "AIO_SAT_FILE"),
            ),
            reconnect=ReconnectPolicy(backoff=Backoff(initial=0.05, maximum=0.1), max_attempts=1),
        )
        sat_events = evidence.watch(sat, "sat")
        async with sat:
            await sat_events.wait_for_item(lambda e: isinstance(e, GaveUp), TIMEOUT, "give up")

        # 4. TLS with an encrypted client key: the right key password connects ...
        tls = TlsSettings(
            ca_file=rxmqtt_tls_files.ca_file,
            cert_file=rxmqtt_tls_files.client_cert,
            key_file=key_file,
            key_password=key_password,
        )
        secure_conn = Connection(
            ConnectionSettings(host=secure.host, port=secure.port, client_id="tls-1", tls=tls),
            reconnect=FAST,
        )
        evidence.watch(secure_conn, "tls")
        async with secure_conn:
            await secure_conn.wait_for(ConnectionState.CONNECTED, TIMEOUT)
            await _round_trip(secure_conn, "secrets/tls", b"tls")

        # ... and a wrong one fails the attempt with an error that shows neither password.
        wrong_tls = TlsSettings(
            ca_file=rxmqtt_tls_files.ca_file,
            cert_file=rxmqtt_tls_files.client_cert,
            key_file=key_file,
            key_password=wrong_key_password,
        )
        evidence.raised("wrong key password", wrong_tls.ssl_context)
        bad_key = Connection(
            ConnectionSettings(
                host=secure.host, port=secure.port, client_id="tls-2", tls=wrong_tls
            ),
            reconnect=ReconnectPolicy(backoff=Backoff(initial=0.05, maximum=0.1), max_attempts=1),
        )
        bad_key_events = evidence.watch(bad_key, "bad_key")
        async with bad_key:
            await bad_key_events.wait_for_item(lambda e: isinstance(e, GaveUp), TIMEOUT, "give up")
    finally:
        if proxy is not None:
            proxy.close()
        plain.close()
        secure.close()

    # 5. errors raised at call sites that had a secret in hand
    evidence.raised(
        "from_url bad query",
        lambda: ConnectionSettings.from_url(f"mqtt://alice:{password}@broker?keep_alive=soon"),
    )
    evidence.raised(
        "from_url bad port",
        lambda: ConnectionSettings.from_url(f"mqtt://alice:{password}@broker:99999"),
    )
    evidence.raised(
        "from_url bad scheme",
        lambda: ConnectionSettings.from_url(f"http://alice:{password}@broker"),
    )
    evidence.raised(
        "provider of the wrong type",
        ConnectionSettings(password=lambda: 42).credentials,  # type: ignore[arg-type,return-value]
    )
    evidence.add("settings from_url", ConnectionSettings.from_url(f"mqtt://u:{password}@h"))
    evidence.add(
        "settings with token", ConnectionSettings(auth_method="m", auth_data=token.encode())
    )

    records = all_logging.records
    assert records, "nothing was logged at all: the capture is broken"
    loggers = sorted({r.name for r in records})
    events = sum(len(e.items) for e in evidence.events)
    print(f"searched {len(records)} log records from {loggers}, {len(evidence.texts)} reprs")
    print(f"and messages, {events} lifecycle events, for {len(every_secret)} secrets")
    leaks = {secret: evidence.leaks(secret, records) for secret in every_secret}
    assert not any(leaks.values()), {s: where for s, where in leaks.items() if where}


async def test_enhanced_auth_tokens_leak_nowhere(
    tmp_path: Path, all_logging: pytest.LogCaptureFixture
) -> None:
    """K8S-SAT against the scripted peer, everything logged at DEBUG: a challenge answered with
    the token, a re-authentication after the token file rotated, one the server refuses
    (DISCONNECT 0x87, raised as ReauthenticationError), a refused reconnect (CONNACK 0x87) and
    an unreadable file. No token appears in a log record, a repr, an event or an error."""
    from rxmqtt import K8sSatAuthenticator, ReauthenticationError
    from rxmqtt.testing._peer import (
        AUTH,
        PeerLink,
        ScriptedPeer,
        auth,
        auth_data,
        auth_method,
        connack,
        disconnect,
        properties,
        reason_string,
    )

    first, rotated = _secret("Sat1"), _secret("Sat2")
    evidence = Evidence()
    token_file = tmp_path / "token"
    token_file.write_text(first)
    sat = K8sSatAuthenticator(token_file, poll_interval=0.05)
    reauthenticated = asyncio.Event()

    async def first_connection(link: PeerLink) -> None:
        link.send(auth(0x18, properties(auth_method("K8S-SAT"), auth_data(b"nonce"))))
        await link.read_until(AUTH)
        link.send(connack())
        await link.read_until(AUTH)  # the rotated token
        link.send(auth(0x00))
        reauthenticated.set()
        await link.read_until(AUTH)  # reauthenticate(): refused
        link.send(disconnect(0x87, properties(reason_string("token expired"))))
        await link.close()

    async def refusing(link: PeerLink) -> None:
        link.send(connack(0x87))
        await link.drain()

    async with ScriptedPeer(first_connection, refusing) as peer:
        conn = Connection(
            ConnectionSettings(
                host="127.0.0.1", port=peer.port, client_id="sat-secrets", authenticator=sat
            ),
            reconnect=NEVER_FATAL,
        )
        events = evidence.watch(conn, "sat")
        evidence.add("authenticator", sat)
        async with conn:
            await conn.wait_for(ConnectionState.CONNECTED, TIMEOUT)
            fresh = tmp_path / "token.new"
            fresh.write_text(rotated)
            fresh.replace(token_file)
            await asyncio.wait_for(reauthenticated.wait(), TIMEOUT)
            with pytest.raises(ReauthenticationError) as refused:
                await asyncio.wait_for(conn.reauthenticate(), TIMEOUT)
            evidence.add("reauthentication error", refused.value)
            await events.wait_for_item(
                lambda e: isinstance(e, ConnectFailed), TIMEOUT, "the refused reconnect"
            )
            token_file.unlink()
            await events.wait_for_item(
                lambda e: (
                    isinstance(e, ConnectFailed)
                    and "AIO" not in e.reason
                    and "token_file" in e.reason
                ),
                TIMEOUT,
                "the unreadable token",
            )
    evidence.raised("missing token file", lambda: K8sSatAuthenticator(token_file))
    evidence.raised("read after unlink", sat.initial_data)
    records = all_logging.records
    assert records, "nothing was logged at all: the capture is broken"
    leaks = {secret: evidence.leaks(secret, records) for secret in (first, rotated)}
    assert not any(leaks.values()), {s: where for s, where in leaks.items() if where}
