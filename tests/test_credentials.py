"""Credentials are resolved on every attempt: rotated certificates and enhanced-auth tokens."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rxmqtt import (
    ConnectFailed,
    Connection,
    ConnectionSettings,
    ConnectionState,
    TlsSettings,
)
from rxmqtt.testing import BrokerConfig, TlsFiles
from rxmqtt.testing._peer import PeerLink, ScriptedPeer, connack
from rxmqtt.testing._raw import varint_at
from rxmqtt.testing.plugin import BrokerFactory
from rxmqtt.testing.recorder import Recorder
from tests._helpers import FAST

pytestmark = pytest.mark.broker


async def test_client_certificate_files_are_reread_on_every_attempt(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles, tmp_path: Path
) -> None:
    """Rotate the client certificate on disk while the broker is down: the next attempt
    presents the new one. (Rotating to a certificate the broker does not trust proves the files
    were re-read: the reconnect is refused for the certificate, where the old one was fine.)"""
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    shutil.copy(rxmqtt_tls_files.client_cert, cert)
    shutil.copy(rxmqtt_tls_files.client_key, key)
    broker = rxmqtt_mosquitto_factory(BrokerConfig(tls=rxmqtt_tls_files, require_certificate=True))
    settings = ConnectionSettings(
        host=broker.host,
        port=broker.port,
        client_id="rotating-cert",
        tls=TlsSettings(ca_file=rxmqtt_tls_files.ca_file, cert_file=cert, key_file=key),
    )
    conn = Connection(settings, reconnect=FAST)
    events = Recorder(conn.lifecycle)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        broker.stop()
        shutil.copy(rxmqtt_tls_files.other_client_cert, cert)  # signed by a CA the broker ignores
        shutil.copy(rxmqtt_tls_files.other_client_key, key)
        broker.start()
        refused = await events.wait_for_item(
            lambda e: isinstance(e, ConnectFailed) and "certificate" in e.reason, 10
        )
        assert isinstance(refused, ConnectFailed)
        assert refused.disconnect.fatal
        await conn.wait_for(ConnectionState.FAILED, 5)


def _connect_properties(packet: bytes) -> dict[int, bytes]:
    """The MQTT 5 CONNECT properties we care about, by identifier (raw values)."""
    _, body = varint_at(packet, 1)  # after the header byte and the remaining length
    length, pos = varint_at(packet, body + 2 + 4 + 1 + 1 + 2)  # name, level, flags, keep alive
    end = pos + length
    fixed = {0x11: 4, 0x21: 2, 0x27: 4, 0x22: 2, 0x19: 1, 0x17: 1}
    found: dict[int, bytes] = {}
    while pos < end:
        ident = packet[pos]
        pos += 1
        if ident in fixed:
            found[ident] = packet[pos : pos + fixed[ident]]
            pos += fixed[ident]
        elif ident in (0x15, 0x16):  # authentication method (string) / data (binary)
            size = int.from_bytes(packet[pos : pos + 2], "big")
            found[ident] = packet[pos + 2 : pos + 2 + size]
            pos += 2 + size
        elif ident == 0x26:  # user property: two strings
            for _ in range(2):
                pos += 2 + int.from_bytes(packet[pos : pos + 2], "big")
        else:
            raise AssertionError(f"unexpected CONNECT property 0x{ident:02X}")
    return found


async def test_enhanced_auth_data_is_resolved_on_every_attempt() -> None:
    """A token provider (e.g. a rotating service-account token) is called for each CONNECT;
    a broker that is briefly unavailable (CONNACK 0x88) sees the fresh token on the retry."""
    seen: list[dict[int, bytes]] = []

    async def broker(link: PeerLink) -> None:
        seen.append(_connect_properties(link.connect))
        code = 0x88 if len(seen) == 1 else 0x00  # Server unavailable, then success
        link.send(connack(code))
        if code:
            await link.close()
            return
        await link.serve()  # until the client disconnects

    tokens = iter([b"token-1", b"token-2", b"token-3"])
    async with ScriptedPeer(broker) as peer:
        conn = Connection(
            ConnectionSettings(
                host="127.0.0.1",
                port=peer.port,
                client_id="sat",
                auth_method="K8S-SAT",
                auth_data=lambda: next(tokens),
            ),
            reconnect=FAST,
        )
        async with conn:
            await conn.wait_for(ConnectionState.CONNECTED, 5)
    assert [s[0x15] for s in seen] == [b"K8S-SAT", b"K8S-SAT"]
    assert [s[0x16] for s in seen] == [b"token-1", b"token-2"]
