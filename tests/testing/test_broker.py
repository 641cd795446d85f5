"""MosquittoBroker and certificates against the real mosquitto, speaking raw MQTT 5 bytes."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator

import pytest

from rxmqtt.testing import BrokerConfig, MosquittoBroker, TlsFiles
from rxmqtt.testing._raw import mqtt_str, packet
from rxmqtt.testing.broker import BrokerStartError
from rxmqtt.testing.plugin import BrokerFactory
from tests._helpers import recv_exact

pytestmark = pytest.mark.broker

# ---------------------------------------------------------------- raw MQTT 5 helpers


def connect_packet(
    client_id: str, username: str | None = None, password: str | None = None
) -> bytes:
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = b"\x00\x04MQTT\x05" + bytes([flags]) + b"\x00\x3c\x00" + mqtt_str(client_id)
    if username is not None:
        body += mqtt_str(username)
    if password is not None:
        body += mqtt_str(password)
    return packet(0x10, body)


def publish_packet(topic: str, payload: bytes, *, retain: bool = False) -> bytes:
    return packet(0x30 | (0x01 if retain else 0), mqtt_str(topic) + b"\x00" + payload)


def subscribe_packet(packet_id: int, topic_filter: str) -> bytes:
    return packet(0x82, packet_id.to_bytes(2, "big") + b"\x00" + mqtt_str(topic_filter) + b"\x00")


def read_packet(sock: socket.socket) -> tuple[int, bytes]:
    header = recv_exact(sock, 1)[0]
    length, shift = 0, 0
    while True:
        byte = recv_exact(sock, 1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return header, recv_exact(sock, length)


def mqtt_connect(
    sock: socket.socket, client_id: str, username: str | None = None, password: str | None = None
) -> int:
    """Send CONNECT, return the CONNACK reason code."""
    sock.sendall(connect_packet(client_id, username, password))
    header, body = read_packet(sock)
    assert header == 0x20, f"expected CONNACK, got {header:#x}"
    return body[1]


def open_client(broker: MosquittoBroker, client_id: str) -> socket.socket:
    sock = socket.create_connection((broker.host, broker.port), timeout=5)
    assert mqtt_connect(sock, client_id) == 0
    return sock


def wait_until(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    assert callable(predicate)
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.01)


def child_mosquittos() -> list[str]:
    result = subprocess.run(
        ["pgrep", "-a", "-P", str(os.getpid()), "mosquitto"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.splitlines()


@pytest.fixture(autouse=True)
def _no_leaked_brokers() -> Iterator[None]:
    """Every test (and its fixtures) must leave no mosquitto child process behind."""
    yield
    assert child_mosquittos() == []


# ---------------------------------------------------------------- lifecycle


def test_fixture_broker_accepts_mqtt5(rxmqtt_mosquitto: MosquittoBroker) -> None:
    assert rxmqtt_mosquitto.is_running
    assert rxmqtt_mosquitto.host == "127.0.0.1"
    assert rxmqtt_mosquitto.url == f"mqtt://127.0.0.1:{rxmqtt_mosquitto.port}"
    with open_client(rxmqtt_mosquitto, "fixture-client"):
        pass
    assert "listener" in rxmqtt_mosquitto.config_path.read_text()
    assert "mosquitto version" in rxmqtt_mosquitto.log_text()


def test_listens_only_on_loopback(rxmqtt_mosquitto: MosquittoBroker) -> None:
    text = rxmqtt_mosquitto.config_path.read_text()
    assert f"listener {rxmqtt_mosquitto.port} 127.0.0.1" in text
    assert "Opening ipv4 listen socket" in rxmqtt_mosquitto.log_text()
    assert "ipv6" not in rxmqtt_mosquitto.log_text().lower()


def test_stop_is_graceful_and_closes_clients() -> None:
    with MosquittoBroker() as broker:
        client = open_client(broker, "sigterm-watcher")
        client.settimeout(5)
        assert broker.stop() == 0
        assert not broker.is_running
        # Mosquitto 2.0.11 closes the socket on SIGTERM without an MQTT 5 DISCONNECT.
        data = client.recv(16)
        assert data == b"" or data[0] == 0xE0
        client.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((broker.host, broker.port), timeout=1)
    assert not broker.temp_dir.exists()


def test_kill_then_restart_on_same_port() -> None:
    with MosquittoBroker() as broker:
        port, first_pid = broker.port, broker.pid
        client = open_client(broker, "crash-watcher")
        assert broker.kill() == -9
        assert not broker.is_running
        client.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            assert client.recv(16) == b""
        client.close()
        broker.start()
        assert broker.port == port
        assert broker.pid != first_pid
        with open_client(broker, "after-crash"):
            pass
        broker.restart(graceful=True)
        assert broker.port == port
        with open_client(broker, "after-restart"):
            pass
        broker.restart(graceful=False)
        assert broker.port == port
        assert broker.is_running


def test_restart_while_a_client_holds_a_connection() -> None:
    # A lingering client socket (and TIME_WAIT) must not stop a restart on the same port.
    with MosquittoBroker() as broker:
        port = broker.port
        clients = [open_client(broker, f"c{i}") for i in range(3)]
        broker.restart(graceful=True)
        assert broker.port == port
        with open_client(broker, "fresh"):
            pass
        for c in clients:
            c.close()


def test_close_kills_and_cleans_up() -> None:
    broker = MosquittoBroker().start()
    pid = broker.pid
    assert pid is not None
    temp_dir = broker.temp_dir
    broker.close()
    broker.close()  # idempotent
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not temp_dir.exists()
    with pytest.raises(RuntimeError, match="closed"):
        broker.start()


def test_bad_config_reports_the_log() -> None:
    broker = MosquittoBroker(BrokerConfig(extra="this_is_not_an_option 1"))
    try:
        with pytest.raises(BrokerStartError, match="this_is_not_an_option"):
            broker.start()
    finally:
        broker.close()


def test_factory_applies_kwargs(rxmqtt_mosquitto_factory: BrokerFactory) -> None:
    broker = rxmqtt_mosquitto_factory(max_keepalive=30, max_packet_size=1024)
    assert broker.config.max_keepalive == 30
    text = broker.config_path.read_text()
    assert "max_keepalive 30" in text
    assert "max_packet_size 1024" in text
    with open_client(broker, "small"):
        pass


# ---------------------------------------------------------------- persistence


def _publish_retained(broker: MosquittoBroker, topic: str, payload: bytes) -> None:
    with open_client(broker, "retainer") as pub:
        pub.sendall(publish_packet(topic, payload, retain=True))
        # A SUBSCRIBE round trip proves the QoS 0 publish was processed before we leave.
        pub.sendall(subscribe_packet(1, topic))
        header, _ = read_packet(pub)
        while header != 0x90:  # skip the retained copy, wait for SUBACK
            header, _ = read_packet(pub)


def _retained(broker: MosquittoBroker, topic: str) -> bytes | None:
    with open_client(broker, "reader") as sub:
        sub.sendall(subscribe_packet(7, topic))
        header, _ = read_packet(sub)
        assert header == 0x90
        sub.settimeout(0.5)
        try:
            header, body = read_packet(sub)
        except TimeoutError:
            return None
        assert header & 0xF0 == 0x30
        topic_len = int.from_bytes(body[:2], "big")
        props_len = body[2 + topic_len]  # QoS 0: no packet id; single-byte varint here
        return body[2 + topic_len + 1 + props_len :]


def test_persistence_keeps_retained_across_graceful_restart(
    rxmqtt_mosquitto_factory: BrokerFactory,
) -> None:
    broker = rxmqtt_mosquitto_factory(persistence=True)
    _publish_retained(broker, "persist/me", b"kept")
    broker.restart(graceful=True)
    assert (broker.data_dir / "mosquitto.db").exists()
    assert _retained(broker, "persist/me") == b"kept"


def test_without_persistence_retained_is_lost(rxmqtt_mosquitto: MosquittoBroker) -> None:
    _publish_retained(rxmqtt_mosquitto, "volatile/me", b"gone")
    assert _retained(rxmqtt_mosquitto, "volatile/me") == b"gone"
    rxmqtt_mosquitto.restart(graceful=True)
    assert _retained(rxmqtt_mosquitto, "volatile/me") is None


# ---------------------------------------------------------------- passwords


def test_password_file(rxmqtt_mosquitto_factory: BrokerFactory) -> None:
    broker = rxmqtt_mosquitto_factory(users={"alice": "s3cret", "bob": "hunter2"})
    assert "allow_anonymous false" in broker.config_path.read_text()

    def code(username: str | None, password: str | None) -> int:
        with socket.create_connection((broker.host, broker.port), timeout=5) as sock:
            return mqtt_connect(sock, "pw-test", username, password)

    assert code("alice", "s3cret") == 0
    assert code("bob", "hunter2") == 0
    # Mosquitto 2.0.11 answers 0x87 (not authorized) rather than 0x86 (bad user name or password).
    assert code("alice", "wrong") in (0x86, 0x87)
    assert code("mallory", "s3cret") in (0x86, 0x87)
    assert code(None, None) in (0x86, 0x87)


# ---------------------------------------------------------------- TLS


def _tls_context(ca: os.PathLike[str], cert: TlsFiles | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=os.fspath(ca))
    if cert is not None:
        ctx.load_cert_chain(cert.client_cert, cert.client_key)
    return ctx


def _tls_connect(
    broker: MosquittoBroker, ctx: ssl.SSLContext, server_hostname: str = "localhost"
) -> int:
    raw = socket.create_connection((broker.host, broker.port), timeout=5)
    with ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
        return mqtt_connect(tls, "tls-client")


def test_tls_listener_verifies_with_the_ca(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles
) -> None:
    broker = rxmqtt_mosquitto_factory(tls=rxmqtt_tls_files)
    assert broker.url.startswith("mqtts://127.0.0.1:")
    assert _tls_connect(broker, _tls_context(rxmqtt_tls_files.ca_file)) == 0
    assert _tls_connect(broker, _tls_context(rxmqtt_tls_files.ca_file), "127.0.0.1") == 0
    with pytest.raises(ssl.SSLCertVerificationError):
        _tls_connect(broker, _tls_context(rxmqtt_tls_files.other_ca_file))


def test_tls_wrong_hostname_fails_verification(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles
) -> None:
    broker = rxmqtt_mosquitto_factory(tls=rxmqtt_tls_files, tls_wrong_host=True)
    with pytest.raises(ssl.SSLCertVerificationError, match=r"match|mismatch"):
        _tls_connect(broker, _tls_context(rxmqtt_tls_files.ca_file))


def test_client_certificate_required(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles
) -> None:
    broker = rxmqtt_mosquitto_factory(tls=rxmqtt_tls_files, require_certificate=True)
    assert _tls_connect(broker, _tls_context(rxmqtt_tls_files.ca_file, rxmqtt_tls_files)) == 0
    # Without a client certificate the handshake (TLS 1.2) or the first read (TLS 1.3) fails.
    with pytest.raises((ssl.SSLError, ConnectionError, EOFError)):
        _tls_connect(broker, _tls_context(rxmqtt_tls_files.ca_file))
    # A client certificate from an unrelated CA is refused as well.
    untrusted = _tls_context(rxmqtt_tls_files.ca_file)
    untrusted.load_cert_chain(rxmqtt_tls_files.other_client_cert, rxmqtt_tls_files.other_client_key)
    with pytest.raises((ssl.SSLError, ConnectionError, EOFError)):
        _tls_connect(broker, untrusted)


def test_identity_as_username(
    rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles
) -> None:
    broker = rxmqtt_mosquitto_factory(
        tls=rxmqtt_tls_files, require_certificate=True, use_identity_as_username=True
    )
    assert _tls_connect(broker, _tls_context(rxmqtt_tls_files.ca_file, rxmqtt_tls_files)) == 0
    wait_until(lambda: "u'client-1'" in broker.log_text())


def test_tls_files_are_pem(rxmqtt_tls_files: TlsFiles) -> None:
    for path in (
        rxmqtt_tls_files.ca_file,
        rxmqtt_tls_files.server_cert,
        rxmqtt_tls_files.client_cert,
        rxmqtt_tls_files.other_ca_file,
        rxmqtt_tls_files.wrong_host_cert,
    ):
        assert path.read_text().startswith("-----BEGIN CERTIFICATE-----")
    for path in (
        rxmqtt_tls_files.server_key,
        rxmqtt_tls_files.client_key,
        rxmqtt_tls_files.wrong_host_key,
    ):
        assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
