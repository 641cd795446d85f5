"""TLS against a real Mosquitto: CA-signed server certificates, refusals, client certificates."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import warnings

import pytest

from rxmqtt import (
    Connected,
    ConnectFailed,
    Connecting,
    Connection,
    ConnectionSettings,
    ConnectionState,
    DisconnectSource,
    GaveUp,
    LifecycleEvent,
    Message,
    TlsSettings,
)
from rxmqtt.testing import BrokerConfig, MosquittoBroker, TlsFiles
from rxmqtt.testing.plugin import BrokerFactory
from rxmqtt.testing.recorder import Recorder
from tests._helpers import FAST, wait_log

pytestmark = pytest.mark.broker

_ids = itertools.count()


def tls_settings(broker: MosquittoBroker, tls: TlsSettings) -> ConnectionSettings:
    return ConnectionSettings(
        host=broker.host, port=broker.port, client_id=f"tls-{next(_ids)}", tls=tls
    )


async def roundtrip(conn: Connection, topic: str) -> None:
    """Subscribe and publish to ``topic`` on ``conn`` until the message comes back."""
    got: Recorder[Message] = Recorder(conn.messages(topic, qos=1))
    try:
        for _ in range(50):
            result = await conn.publish(topic, b"over tls", qos=1)
            assert result.reason_code in (0x00, 0x10)
            try:
                await got.wait_for_item(lambda m: True, 0.2)
                break
            except TimeoutError:
                continue
        msg = await got.wait_for_item(lambda m: True, 1)
        assert msg.payload == b"over tls"
    finally:
        got.dispose()


async def fails_once(conn: Connection) -> tuple[list[LifecycleEvent], float]:
    """Run ``conn`` until FAILED; return its lifecycle and how long that took."""
    events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with conn:
        await conn.wait_for(ConnectionState.FAILED, 2)
        took = loop.time() - started
    return events.items, took


def assert_fatal_network_failure(events: list[LifecycleEvent], *words: str) -> str:
    attempts = [e for e in events if isinstance(e, Connecting)]
    assert len(attempts) == 1, f"exactly one attempt, got {events!r}"
    return _assert_gave_up(events, *words)


def assert_broker_refused_the_certificate(events: list[LifecycleEvent]) -> str:
    """The broker refused this client's certificate with a TLS alert after the client's TLS 1.3
    handshake had completed: FAILED, fatal, naming the certificate, and no storm of retries.

    The broker sends its alert and closes, with a reset when the client's CONNECT is still
    unread. Usually the client reads the alert and the first attempt is fatal. When the
    attempt ends without the alert having been read (seen 1 in 15 runs under load, as "EOF"),
    the client cannot tell that from a broker or network dropping a fresh connection, so
    retrying is right; the next attempt reads the alert. Hence at most a few attempts, each one
    before the last a retriable network loss, the last the fatal refusal."""
    attempts = [e for e in events if isinstance(e, Connecting)]
    failed = [e for e in events if isinstance(e, ConnectFailed)]
    assert 1 <= len(attempts) <= 3, f"a storm of retries: {events!r}"
    for lost in failed[:-1]:
        assert not lost.disconnect.fatal, lost
        assert lost.disconnect.source is DisconnectSource.NETWORK, lost
        assert lost.retry_in is not None, lost
    return _assert_gave_up(events, "certificate")


def _assert_gave_up(events: list[LifecycleEvent], *words: str) -> str:
    """Every attempt failed and the last failure was fatal, a network one naming ``words``."""
    attempts = [e for e in events if isinstance(e, Connecting)]
    failed = [e for e in events if isinstance(e, ConnectFailed)]
    assert len(failed) == len(attempts), events
    assert not any(isinstance(e, Connected) for e in events)
    assert any(isinstance(e, GaveUp) for e in events)
    failure = failed[-1]
    assert failure.disconnect.fatal
    assert failure.disconnect.source is DisconnectSource.NETWORK
    assert failure.retry_in is None
    reason = failure.reason.lower()
    assert any(word in reason for word in words), f"reason {failure.reason!r} names none of {words}"
    return failure.reason


# ---------------------------------------------------------------- good certificates


async def test_connects_with_ca_signed_server_certificate(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles
) -> None:
    broker = rxmqtt_mosquitto_factory(BrokerConfig(tls=rxmqtt_tls_files))
    conn = Connection(
        tls_settings(broker, TlsSettings(ca_file=rxmqtt_tls_files.ca_file)), reconnect=FAST
    )
    events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        await roundtrip(conn, "tls/roundtrip")
    connected = next(e for e in events.items if isinstance(e, Connected))
    assert connected.endpoint == f"127.0.0.1:{broker.port}"
    assert not any(isinstance(e, ConnectFailed) for e in events.items)


async def test_server_hostname_overrides_the_checked_name(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles
) -> None:
    broker = rxmqtt_mosquitto_factory(BrokerConfig(tls=rxmqtt_tls_files))
    tls = TlsSettings(ca_file=rxmqtt_tls_files.ca_file, server_hostname="localhost")
    async with Connection(tls_settings(broker, tls), reconnect=FAST) as conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        await roundtrip(conn, "tls/sni")


async def test_client_certificate_auth_works(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles
) -> None:
    broker = rxmqtt_mosquitto_factory(BrokerConfig(tls=rxmqtt_tls_files, require_certificate=True))
    tls = TlsSettings(
        ca_file=rxmqtt_tls_files.ca_file,
        cert_file=rxmqtt_tls_files.client_cert,
        key_file=rxmqtt_tls_files.client_key,
    )
    async with Connection(tls_settings(broker, tls), reconnect=FAST) as conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        await roundtrip(conn, "tls/client-cert")


async def test_client_certificate_identity_becomes_the_username(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles
) -> None:
    acl = f"user {rxmqtt_tls_files.client_common_name}\ntopic readwrite tls/#\n"
    broker = rxmqtt_mosquitto_factory(
        BrokerConfig(
            tls=rxmqtt_tls_files, require_certificate=True, use_identity_as_username=True, acl=acl
        )
    )
    tls = TlsSettings(
        ca_file=rxmqtt_tls_files.ca_file,
        cert_file=rxmqtt_tls_files.client_cert,
        key_file=rxmqtt_tls_files.client_key,
    )
    async with Connection(tls_settings(broker, tls), reconnect=FAST) as conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        await roundtrip(conn, "tls/identity")  # the ACL only lets client-1 use tls/#


# ---------------------------------------------------------------- refusals


async def test_wrong_host_certificate_fails_once_fatal(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles
) -> None:
    broker = rxmqtt_mosquitto_factory(BrokerConfig(tls=rxmqtt_tls_files, tls_wrong_host=True))
    conn = Connection(
        tls_settings(broker, TlsSettings(ca_file=rxmqtt_tls_files.ca_file)), reconnect=FAST
    )
    events, took = await fails_once(conn)
    reason = assert_fatal_network_failure(events, "hostname", "certificate")
    assert "127.0.0.1" in reason, reason
    assert took < 2.0, f"FAILED after {took:.3f}s"


async def test_unknown_ca_fails_once_fatal(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles
) -> None:
    broker = rxmqtt_mosquitto_factory(BrokerConfig(tls=rxmqtt_tls_files))
    tls = TlsSettings(ca_file=rxmqtt_tls_files.other_ca_file)
    conn = Connection(tls_settings(broker, tls), reconnect=FAST)
    events, took = await fails_once(conn)
    reason = assert_fatal_network_failure(events, "certificate")
    assert "verif" in reason.lower() or "issuer" in reason.lower(), reason
    assert took < 2.0, f"FAILED after {took:.3f}s"


async def test_verify_hostname_off_connects_to_wrong_host_and_warns(
    rxmqtt_mosquitto_factory: BrokerFactory,
    rxmqtt_tls_files: TlsFiles,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = rxmqtt_mosquitto_factory(BrokerConfig(tls=rxmqtt_tls_files, tls_wrong_host=True))
    tls = TlsSettings(ca_file=rxmqtt_tls_files.ca_file, verify_hostname=False)
    with caplog.at_level(logging.WARNING, logger="rxmqtt"):
        async with Connection(tls_settings(broker, tls), reconnect=FAST) as conn:
            await conn.wait_for(ConnectionState.CONNECTED, 5)
            await roundtrip(conn, "tls/no-hostname-check")
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("rxmqtt")
    ]
    assert any("hostname verification is OFF" in r.getMessage() for r in warnings), [
        r.getMessage() for r in warnings
    ]


async def test_verify_hostname_off_still_rejects_an_unknown_ca(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles
) -> None:
    broker = rxmqtt_mosquitto_factory(BrokerConfig(tls=rxmqtt_tls_files, tls_wrong_host=True))
    tls = TlsSettings(ca_file=rxmqtt_tls_files.other_ca_file, verify_hostname=False)
    events, _ = await fails_once(Connection(tls_settings(broker, tls), reconnect=FAST))
    assert_fatal_network_failure(events, "certificate")


async def test_without_a_client_certificate_it_never_connects(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles
) -> None:
    """The guarantee that holds whatever the classification: the broker lets nobody in."""
    broker = rxmqtt_mosquitto_factory(BrokerConfig(tls=rxmqtt_tls_files, require_certificate=True))
    conn = Connection(
        tls_settings(broker, TlsSettings(ca_file=rxmqtt_tls_files.ca_file)), reconnect=FAST
    )
    events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
    async with conn:
        await events.wait_until(
            lambda es: (
                any(isinstance(e, GaveUp) for e in es)
                or sum(isinstance(e, ConnectFailed) for e in es) >= 3
            ),
            5,
            "a refusal",
        )
    assert not any(isinstance(e, Connected) for e in events.items)
    # Mosquitto logs the refusal after OpenSSL sent the alert the client reacted to
    await wait_log(broker, "peer did not return a certificate")


async def test_missing_client_certificate_is_refused(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles
) -> None:
    """With TLS 1.3 the client finishes its handshake before the broker checks the client
    certificate; the broker's refusal (alert "certificate required") arrives on the first read.
    Retrying cannot help -- the same settings will be refused again -- so the connection must
    give up (FAILED, fatal) after one attempt and say why, not loop as if the network dropped."""
    broker = rxmqtt_mosquitto_factory(BrokerConfig(tls=rxmqtt_tls_files, require_certificate=True))
    conn = Connection(
        tls_settings(broker, TlsSettings(ca_file=rxmqtt_tls_files.ca_file)), reconnect=FAST
    )
    events, took = await fails_once(conn)
    reason = assert_broker_refused_the_certificate(events)
    assert took < 2.0, f"FAILED after {took:.3f}s ({reason})"


async def test_client_certificate_from_an_unknown_ca_is_refused(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles
) -> None:
    broker = rxmqtt_mosquitto_factory(BrokerConfig(tls=rxmqtt_tls_files, require_certificate=True))
    tls = TlsSettings(
        ca_file=rxmqtt_tls_files.ca_file,
        cert_file=rxmqtt_tls_files.other_client_cert,
        key_file=rxmqtt_tls_files.other_client_key,
    )
    events, _ = await fails_once(Connection(tls_settings(broker, tls), reconnect=FAST))
    assert_broker_refused_the_certificate(events)


@pytest.mark.parametrize("case", ["wrong-host", "unknown-ca"])
async def test_a_failed_handshake_leaks_no_socket(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles, case: str
) -> None:
    broker = rxmqtt_mosquitto_factory(
        BrokerConfig(tls=rxmqtt_tls_files, tls_wrong_host=case == "wrong-host")
    )
    ca_file = rxmqtt_tls_files.other_ca_file if case == "unknown-ca" else rxmqtt_tls_files.ca_file
    conn = Connection(tls_settings(broker, TlsSettings(ca_file=ca_file)), reconnect=FAST)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        await fails_once(conn)
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == [], leaks
