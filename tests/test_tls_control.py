"""TLS control: ALPN and the SNI name, seen by a small TLS server in the test; your own
SSLContext (or a provider of one) and a client key under a pass-phrase, against Mosquitto."""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from rxmqtt import (
    ConnectFailed,
    Connection,
    ConnectionSettings,
    ConnectionState,
    LifecycleEvent,
    TlsSettings,
)
from rxmqtt.testing import BrokerConfig, TlsFiles
from rxmqtt.testing.plugin import BrokerFactory
from rxmqtt.testing.recorder import Recorder
from tests._helpers import FAST, wait_log

DEADLINE = 10.0
CONNACK = b"\x20\x03\x00\x00\x00"  # MQTT 5 CONNACK: no session, success, no properties

_ids = itertools.count()


@dataclass
class Offered:
    """What the TLS server saw of each client hello: the SNI name and the ALPN it selected."""

    server_names: list[str | None] = field(default_factory=list)
    alpn: list[str | None] = field(default_factory=list)


async def tls_broker_stub(files: TlsFiles, offered: Offered) -> asyncio.Server:
    """A TLS server on 127.0.0.1 that records SNI and ALPN, then plays a broker that accepts
    the CONNECT and ignores the rest."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.server_cert, files.server_key)
    context.set_alpn_protocols(["x-amzn-mqtt-ca", "mqtt"])

    def sni(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        offered.server_names.append(name)

    context.sni_callback = sni  # type: ignore[assignment]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        offered.alpn.append(writer.get_extra_info("ssl_object").selected_alpn_protocol())
        try:
            await reader.readexactly(2)  # the CONNECT's first bytes: answer it
            writer.write(CONNACK)
            while await reader.read(4096):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)


def settings_for(port: int, tls: TlsSettings) -> ConnectionSettings:
    return ConnectionSettings(host="127.0.0.1", port=port, client_id=f"tlsc-{next(_ids)}", tls=tls)


# ---------------------------------------------------------------- ALPN and SNI


async def offered_by(
    files: TlsFiles, settings: Callable[[int], ConnectionSettings | str]
) -> Offered:
    """Connect once to a :func:`tls_broker_stub` with ``settings(its port)``: what it was
    offered."""
    offered = Offered()
    server = await tls_broker_stub(files, offered)
    async with server, Connection(settings(server.sockets[0].getsockname()[1])) as conn:
        await conn.wait_for(ConnectionState.CONNECTED, DEADLINE)
    return offered


async def test_the_server_is_offered_the_alpn_protocols_and_the_sni_override(
    rxmqtt_tls_files: TlsFiles,
) -> None:
    tls = TlsSettings(
        ca_file=rxmqtt_tls_files.ca_file,
        server_hostname="localhost",
        alpn_protocols=("x-amzn-mqtt-ca",),
    )
    offered = await offered_by(rxmqtt_tls_files, lambda port: settings_for(port, tls))
    assert offered.server_names == ["localhost"]
    assert offered.alpn == ["x-amzn-mqtt-ca"]


async def test_without_alpn_or_override_none_is_offered_for_an_ip_host(
    rxmqtt_tls_files: TlsFiles,
) -> None:
    tls = TlsSettings(ca_file=rxmqtt_tls_files.ca_file)
    offered = await offered_by(rxmqtt_tls_files, lambda port: settings_for(port, tls))
    assert offered.server_names == [None]  # an IP address is never sent as SNI
    assert offered.alpn == [None]


async def test_alpn_and_sni_come_from_the_url_too(rxmqtt_tls_files: TlsFiles) -> None:
    offered = await offered_by(
        rxmqtt_tls_files,
        lambda port: (
            f"mqtts://127.0.0.1:{port}?ca_file={rxmqtt_tls_files.ca_file}"
            "&server_hostname=localhost&alpn_protocols=mqtt"
        ),
    )
    assert offered.server_names == ["localhost"]
    assert offered.alpn == ["mqtt"]


async def test_a_user_context_with_its_own_alpn_is_used_as_given(
    rxmqtt_tls_files: TlsFiles,
) -> None:
    context = ssl.create_default_context(cafile=str(rxmqtt_tls_files.ca_file))
    context.set_alpn_protocols(["mqtt"])
    tls = TlsSettings(context=context, server_hostname="localhost")
    offered = await offered_by(rxmqtt_tls_files, lambda port: settings_for(port, tls))
    assert offered.server_names == ["localhost"]
    assert offered.alpn == ["mqtt"]


# ---------------------------------------------------------------- own context, against Mosquitto


@pytest.mark.broker
async def test_a_context_provider_is_called_on_every_attempt(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles
) -> None:
    broker = rxmqtt_mosquitto_factory(BrokerConfig(tls=rxmqtt_tls_files))
    calls: list[int] = []

    def context() -> ssl.SSLContext:
        calls.append(1)
        return ssl.create_default_context(cafile=str(rxmqtt_tls_files.ca_file))

    conn = Connection(settings_for(broker.port, TlsSettings(context=context)), reconnect=FAST)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, DEADLINE)
        broker.restart()
        await conn.wait_for(ConnectionState.RECONNECTING, DEADLINE)
        await conn.wait_for(ConnectionState.CONNECTED, DEADLINE)
    assert len(calls) >= 2


@pytest.mark.broker
async def test_a_user_context_that_does_not_trust_the_broker_fails_fatally(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles
) -> None:
    broker = rxmqtt_mosquitto_factory(BrokerConfig(tls=rxmqtt_tls_files))
    context = ssl.create_default_context(cafile=str(rxmqtt_tls_files.other_ca_file))
    conn = Connection(settings_for(broker.port, TlsSettings(context=context)), reconnect=FAST)
    events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
    async with conn:
        await conn.wait_for(ConnectionState.FAILED, DEADLINE)
    failed = [e for e in events.items if isinstance(e, ConnectFailed)]
    assert len(failed) == 1
    assert failed[0].disconnect.fatal
    assert "certificate verification failed" in failed[0].reason


# ---------------------------------------------------------------- client key pass-phrase


@pytest.mark.broker
async def test_a_client_certificate_with_an_encrypted_key_and_its_password(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles
) -> None:
    files = rxmqtt_tls_files
    broker = rxmqtt_mosquitto_factory(
        BrokerConfig(tls=files, require_certificate=True, use_identity_as_username=True)
    )
    assert files.encrypted_client_key is not None
    tls = TlsSettings(
        ca_file=files.ca_file,
        cert_file=files.client_cert,
        key_file=files.encrypted_client_key,
        key_password=files.client_key_password,
    )
    async with Connection(settings_for(broker.port, tls)) as conn:
        await conn.wait_for(ConnectionState.CONNECTED, DEADLINE)
    assert files.client_key_password not in repr(tls)
    await wait_log(broker, f"u'{files.client_common_name}'")  # the certificate's identity


@pytest.mark.broker
async def test_a_wrong_key_password_fails_the_attempt_without_showing_it(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles
) -> None:
    files = rxmqtt_tls_files
    broker = rxmqtt_mosquitto_factory(BrokerConfig(tls=files, require_certificate=True))
    assert files.encrypted_client_key is not None
    wrong = "not-the-pass-phrase"
    tls = TlsSettings(
        ca_file=files.ca_file,
        cert_file=files.client_cert,
        key_file=files.encrypted_client_key,
        key_password=wrong,
    )
    conn = Connection(settings_for(broker.port, tls), reconnect=FAST)
    events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
    async with conn:
        failed = await events.wait_for_item(lambda e: isinstance(e, ConnectFailed), DEADLINE)
    assert isinstance(failed, ConnectFailed)
    assert "cert_file" in failed.reason
    assert wrong not in failed.reason
    assert wrong not in repr(tls)
