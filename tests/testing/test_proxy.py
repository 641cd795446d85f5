"""FaultProxy in front of the real mosquitto, driven with raw MQTT 5 bytes over sockets."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from rxmqtt.testing import FaultProxy, MosquittoBroker
from rxmqtt.testing.plugin import BrokerFactory, ProxyFactory
from tests._helpers import ipv6_proxy, recv_exact

pytestmark = pytest.mark.broker

PINGREQ = b"\xc0\x00"
PINGRESP = b"\xd0\x00"


def connect_packet(client_id: str) -> bytes:
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x05\x02\x00\x3c\x00" + len(cid).to_bytes(2, "big") + cid
    return bytes([0x10, len(body)]) + body


def mqtt_client(proxy: FaultProxy, client_id: str) -> socket.socket:
    """Connect through the proxy and complete the MQTT 5 handshake."""
    sock = socket.create_connection((proxy.host, proxy.port), timeout=5)
    sock.sendall(connect_packet(client_id))
    header = recv_exact(sock, 2)
    assert header[0] == 0x20, f"expected CONNACK, got {header!r}"
    body = recv_exact(sock, header[1])
    assert body[1] == 0, f"CONNACK reason {body[1]:#x}"
    return sock


def ping(sock: socket.socket) -> float:
    """PINGREQ -> PINGRESP round trip time in seconds."""
    start = time.monotonic()
    sock.sendall(PINGREQ)
    assert recv_exact(sock, 2) == PINGRESP
    return time.monotonic() - start


def wait_until(predicate: object, timeout: float = 5.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.005)


def proxy_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("rxmqtt-FaultProxy")]


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    yield
    assert proxy_threads() == []


def test_pass_through(rxmqtt_fault_proxy: FaultProxy, rxmqtt_mosquitto: MosquittoBroker) -> None:
    assert rxmqtt_fault_proxy.url == f"mqtt://127.0.0.1:{rxmqtt_fault_proxy.port}"
    assert rxmqtt_fault_proxy.target == (rxmqtt_mosquitto.host, rxmqtt_mosquitto.port)
    with mqtt_client(rxmqtt_fault_proxy, "pass") as sock:
        (conn,) = rxmqtt_fault_proxy.wait_for_connections(1)
        ping(sock)
        assert conn.bytes_to_server == len(connect_packet("pass")) + 2
        assert conn.bytes_to_client >= 2 + 2
        assert conn.is_open
        assert rxmqtt_fault_proxy.accepted == 1
    conn.wait_closed()
    rxmqtt_fault_proxy.wait_for_no_connections()
    assert conn.close_reason == "closed by client"


def test_blackhole_keeps_sockets_open_and_forwards_nothing(rxmqtt_fault_proxy: FaultProxy) -> None:
    with mqtt_client(rxmqtt_fault_proxy, "bh") as sock:
        (conn,) = rxmqtt_fault_proxy.wait_for_connections(1)
        sent_before = conn.bytes_to_server
        rxmqtt_fault_proxy.blackhole()
        assert conn.is_blackholed
        sock.sendall(PINGREQ)
        wait_until(lambda: conn.bytes_from_client == sent_before + 2)  # read and discarded
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):  # no PINGRESP and no EOF: the socket stays open
            sock.recv(16)
        assert conn.bytes_to_server == sent_before
        assert conn.is_open
        rxmqtt_fault_proxy.pass_through()
        sock.settimeout(5)
        ping(sock)


def test_new_connections_inherit_blackhole(rxmqtt_fault_proxy: FaultProxy) -> None:
    rxmqtt_fault_proxy.blackhole()
    with socket.create_connection(
        (rxmqtt_fault_proxy.host, rxmqtt_fault_proxy.port), timeout=5
    ) as sock:
        (conn,) = rxmqtt_fault_proxy.wait_for_connections(1)
        sock.sendall(connect_packet("late"))
        wait_until(lambda: conn.bytes_from_client > 0)
        assert conn.bytes_to_server == 0
        assert conn.is_blackholed


def test_blackhole_holds_the_close_until_lifted(rxmqtt_fault_proxy: FaultProxy) -> None:
    sock = mqtt_client(rxmqtt_fault_proxy, "holder")
    (conn,) = rxmqtt_fault_proxy.wait_for_connections(1)
    conn.blackhole()
    sock.close()
    with pytest.raises(TimeoutError):
        conn.wait_closed(0.2)  # the FIN is "lost" while black-holed
    conn.pass_through()
    conn.wait_closed()


def test_reset_gives_econnreset(rxmqtt_fault_proxy: FaultProxy) -> None:
    with mqtt_client(rxmqtt_fault_proxy, "rst") as sock:
        (conn,) = rxmqtt_fault_proxy.wait_for_connections(1)
        rxmqtt_fault_proxy.reset()
        assert not conn.is_open
        assert rxmqtt_fault_proxy.connections == []
        with pytest.raises(ConnectionResetError):
            sock.recv(16)


def test_per_connection_controls_are_independent(rxmqtt_fault_proxy: FaultProxy) -> None:
    with (
        mqtt_client(rxmqtt_fault_proxy, "one") as one,
        mqtt_client(rxmqtt_fault_proxy, "two") as two,
    ):
        first, second = rxmqtt_fault_proxy.wait_for_connections(2)
        first.blackhole()
        one.sendall(PINGREQ)
        ping(two)
        one.settimeout(0.2)
        with pytest.raises(TimeoutError):
            one.recv(16)
        second.reset()
        with pytest.raises(ConnectionResetError):
            two.recv(16)
        assert rxmqtt_fault_proxy.connections == [first]


def test_refuse_and_accept(rxmqtt_fault_proxy: FaultProxy) -> None:
    with mqtt_client(rxmqtt_fault_proxy, "existing") as existing:
        rxmqtt_fault_proxy.refuse()
        assert rxmqtt_fault_proxy.is_refusing
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((rxmqtt_fault_proxy.host, rxmqtt_fault_proxy.port), timeout=2)
        ping(existing)  # refuse() leaves existing connections alone
        rxmqtt_fault_proxy.accept()
        with mqtt_client(rxmqtt_fault_proxy, "again"):
            pass
        rxmqtt_fault_proxy.refuse(reset=True)
        try:  # the RST may already arrive while connect() completes
            with socket.create_connection(
                (rxmqtt_fault_proxy.host, rxmqtt_fault_proxy.port), timeout=2
            ) as s:
                s.settimeout(2)
                s.sendall(connect_packet("x"))
                data = s.recv(16)
        except ConnectionResetError:
            data = b""
        assert data == b"", "accepted, then reset: nothing comes back"
        rxmqtt_fault_proxy.accept()
        with mqtt_client(rxmqtt_fault_proxy, "again2"):
            pass
        assert rxmqtt_fault_proxy.accepted == 3


def test_delay_adds_latency(rxmqtt_fault_proxy: FaultProxy) -> None:
    with mqtt_client(rxmqtt_fault_proxy, "slow") as sock:
        base = ping(sock)
        rxmqtt_fault_proxy.delay(0.15)
        rtt = ping(sock)
        assert 0.3 <= rtt < base + 0.3 + 1.0  # 0.15 s each way
        # Order is preserved across several packets in flight.
        sock.sendall(PINGREQ * 3)
        assert recv_exact(sock, 6) == PINGRESP * 3
        rxmqtt_fault_proxy.pass_through()
        assert ping(sock) < 0.3
    with pytest.raises(ValueError, match="seconds"):
        rxmqtt_fault_proxy.delay(-1)


def test_inject_garbage_makes_mosquitto_disconnect(
    rxmqtt_fault_proxy: FaultProxy, rxmqtt_mosquitto: MosquittoBroker
) -> None:
    with mqtt_client(rxmqtt_fault_proxy, "victim") as sock:
        (conn,) = rxmqtt_fault_proxy.wait_for_connections(1)
        conn.inject_to_server(b"\xf0\x00")  # reserved packet type 15
        conn.wait_closed()
        assert conn.close_reason == "closed by server"
        # Mosquitto 2.0.11 just closes the socket; it sends no MQTT 5 DISCONNECT.
        assert sock.recv(16) == b""
    assert "protocol error" in rxmqtt_mosquitto.log_text()


def test_inject_to_client(rxmqtt_fault_proxy: FaultProxy) -> None:
    with mqtt_client(rxmqtt_fault_proxy, "fed") as sock:
        (conn,) = rxmqtt_fault_proxy.wait_for_connections(1)
        before = conn.bytes_to_client
        conn.inject_to_client(PINGRESP)
        assert recv_exact(sock, 2) == PINGRESP
        assert conn.bytes_to_client == before + 2


def test_broker_crash_propagates(
    rxmqtt_fault_proxy: FaultProxy, rxmqtt_mosquitto: MosquittoBroker
) -> None:
    with mqtt_client(rxmqtt_fault_proxy, "orphan") as sock:
        (conn,) = rxmqtt_fault_proxy.wait_for_connections(1)
        rxmqtt_mosquitto.kill()
        conn.wait_closed()
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(16) == b""
        # Nothing listens behind the proxy now: new clients are accepted, then reset. (The
        # RST can reach this side before connect() has returned, so it may raise there too.)
        with (
            contextlib.suppress(ConnectionResetError),
            socket.create_connection(
                (rxmqtt_fault_proxy.host, rxmqtt_fault_proxy.port), timeout=2
            ) as s,
        ):
            assert s.recv(16) == b""
        rxmqtt_mosquitto.start()
        with mqtt_client(rxmqtt_fault_proxy, "back"):
            pass


def test_wait_for_connections_times_out_clearly(rxmqtt_fault_proxy: FaultProxy) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"expected >= 1 live connection"):
        rxmqtt_fault_proxy.wait_for_connections(1, timeout=0.1)
    assert time.monotonic() - start < 2


def test_retarget(rxmqtt_fault_proxy: FaultProxy, rxmqtt_mosquitto_factory: BrokerFactory) -> None:
    with mqtt_client(rxmqtt_fault_proxy, "old-target") as old:
        other = rxmqtt_mosquitto_factory()
        rxmqtt_fault_proxy.retarget(other.host, other.port)
        with mqtt_client(rxmqtt_fault_proxy, "new-target"):
            conns = rxmqtt_fault_proxy.wait_for_connections(2)
            assert conns[1].server_address == (other.host, other.port)
        ping(old)


def test_factory_with_host_port(
    rxmqtt_mosquitto: MosquittoBroker, rxmqtt_fault_proxy_factory: ProxyFactory
) -> None:
    proxy = rxmqtt_fault_proxy_factory(rxmqtt_mosquitto.host, rxmqtt_mosquitto.port)
    chained = rxmqtt_fault_proxy_factory("127.0.0.1", proxy.port)
    with mqtt_client(chained, "chained") as sock:
        ping(sock)
        assert len(proxy.wait_for_connections(1)) == 1


def test_close_closes_everything(rxmqtt_mosquitto: MosquittoBroker) -> None:
    proxy = FaultProxy(rxmqtt_mosquitto.host, rxmqtt_mosquitto.port).start()
    sock = mqtt_client(proxy, "closing")
    (conn,) = proxy.wait_for_connections(1)
    port = proxy.port
    proxy.close()
    proxy.close()  # idempotent
    assert proxy_threads() == []
    assert not conn.is_open
    sock.settimeout(2)
    assert sock.recv(16) == b""
    sock.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    with pytest.raises(RuntimeError, match="not running"):
        proxy.blackhole()


async def test_usable_from_an_async_test(rxmqtt_fault_proxy: FaultProxy) -> None:
    reader, writer = await asyncio.open_connection(rxmqtt_fault_proxy.host, rxmqtt_fault_proxy.port)
    writer.write(connect_packet("async"))
    connack = await asyncio.wait_for(reader.readexactly(2), 5)
    assert connack[0] == 0x20
    await reader.readexactly(connack[1])
    (conn,) = await asyncio.to_thread(rxmqtt_fault_proxy.wait_for_connections, 1)
    rxmqtt_fault_proxy.reset()  # blocking briefly on this loop is fine: the proxy has its own
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(reader.readexactly(1), 5)
    writer.close()
    assert not conn.is_open


def test_refuse_uses_econnrefused_errno(rxmqtt_fault_proxy: FaultProxy) -> None:
    rxmqtt_fault_proxy.refuse()
    with socket.socket() as s:
        assert (
            s.connect_ex((rxmqtt_fault_proxy.host, rxmqtt_fault_proxy.port)) == errno.ECONNREFUSED
        )


def test_refuse_silently_leaves_connects_unanswered_until_accept(
    rxmqtt_fault_proxy: FaultProxy,
) -> None:
    with mqtt_client(rxmqtt_fault_proxy, "existing") as existing:
        rxmqtt_fault_proxy.refuse(silently=True)
        assert rxmqtt_fault_proxy.is_refusing
        with socket.socket() as s:  # no answer at all: neither accepted nor refused
            s.settimeout(0.5)
            with pytest.raises(TimeoutError):
                s.connect((rxmqtt_fault_proxy.host, rxmqtt_fault_proxy.port))
        ping(existing)  # existing connections are left alone
        rxmqtt_fault_proxy.accept()
        with mqtt_client(rxmqtt_fault_proxy, "again"):
            pass
    assert rxmqtt_fault_proxy.accepted == 2  # the queue filler was never proxied
    with pytest.raises(ValueError, match="reset and silently exclude each other"):
        rxmqtt_fault_proxy.refuse(reset=True, silently=True)


def test_a_proxy_listens_on_ipv6_loopback_on_a_given_port(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    with ipv6_proxy(rxmqtt_mosquitto) as proxy:
        assert (proxy.host, proxy.port) == ("::1", rxmqtt_mosquitto.port)
        assert proxy.url == f"mqtt://[::1]:{rxmqtt_mosquitto.port}"
        with mqtt_client(proxy, "over-ipv6") as sock:
            assert sock.family == socket.AF_INET6
            ping(sock)
