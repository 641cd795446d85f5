"""Health probes: real HTTP requests against HealthServer and a real file for HealthFile, while
a real Mosquitto stops, returns, or the connection gives up."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from reactivex.subject import BehaviorSubject, Subject

from rxmqtt import Connection, ConnectionSettings, ConnectionState, Disconnect, DisconnectSource
from rxmqtt.health import HealthFile, HealthServer, Probe, is_live, is_ready
from rxmqtt.presets import k8s_multi_node, k8s_single_node
from rxmqtt.testing import MosquittoBroker, free_port
from rxmqtt.testing.plugin import BrokerFactory

_ids = itertools.count()


def settings_for(host: str, port: int) -> ConnectionSettings:
    return ConnectionSettings(host=host, port=port, client_id=f"health-{next(_ids)}")


class FakeConnection:
    """Just the two streams the probes watch, driven by the test."""

    def __init__(self) -> None:
        self.states: BehaviorSubject[ConnectionState] = BehaviorSubject(
            ConnectionState.DISCONNECTED
        )
        self.lost: Subject[Disconnect] = Subject()

    @property
    def connection_state(self) -> BehaviorSubject[ConnectionState]:
        return self.states

    @property
    def disconnects(self) -> Subject[Disconnect]:
        return self.lost


async def http(server: HealthServer, path: str = "/readyz", method: str = "GET") -> tuple[int, str]:
    """One HTTP/1.1 request over asyncio streams; returns (status, body)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: probe\r\n\r\n".encode())
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body.decode()


async def wait_for_status(
    server: HealthServer, path: str, status: int, timeout: float
) -> tuple[float, str]:
    """Probe like a kubelet (every 50 ms) until ``path`` answers ``status``; returns how long
    it took and the body. TimeoutError after ``timeout``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    last: tuple[int, str] | None = None
    while loop.time() - start < timeout:
        last = await http(server, path)
        if last[0] == status:
            return loop.time() - start, last[1]
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{path} did not answer {status} within {timeout}s; last: {last}")


def test_ready_and_live_rules() -> None:
    assert [s.name for s in ConnectionState if is_ready(s)] == ["CONNECTED"]
    assert [s.name for s in ConnectionState if not is_live(s)] == ["FAILED"]


@pytest.mark.broker
async def test_readyz_flips_within_one_keep_alive_of_a_broker_stop_and_back(
    rxmqtt_mosquitto_factory: BrokerFactory,
) -> None:
    broker = rxmqtt_mosquitto_factory(persistence=True)
    preset = k8s_single_node()
    conn = preset.connect(settings_for(broker.host, broker.port))
    async with HealthServer(conn) as server, conn:
        await wait_for_status(server, "/readyz", 200, 5)
        assert await http(server, "/livez") == (200, "live: CONNECTED\n")
        broker.stop()
        took, body = await wait_for_status(server, "/readyz", 503, preset.keep_alive)
        assert took < preset.keep_alive
        assert body.startswith("not ready: RECONNECTING (last disconnect: network: 0x")
        assert (await http(server, "/livez"))[0] == 200, "reconnecting is alive"
        broker.start()
        await wait_for_status(server, "/readyz", 200, 10)
        # any HTTP client works: urllib, in a thread, like a kubelet would
        with await asyncio.to_thread(urllib.request.urlopen, f"{server.url}/readyz", None, 5) as r:
            assert r.status == 200
            assert r.read() == b"ready: CONNECTED\n"


@pytest.mark.broker
async def test_livez_fails_once_the_multi_node_preset_gives_up() -> None:
    """k8s_multi_node gives up after its attempts (here 2, to be quick): FAILED -> /livez 503,
    so the kubelet restarts the pod."""
    preset = k8s_multi_node()
    preset = preset.replace(reconnect=dataclasses.replace(preset.reconnect, max_attempts=2))
    conn = preset.connect(settings_for("127.0.0.1", free_port()))  # nobody listens there
    async with conn, HealthServer(conn) as server:
        assert (await http(server, "/livez"))[0] == 200
        await conn.wait_for(ConnectionState.FAILED, 10)
        status, body = await http(server, "/livez")
        assert status == 503
        assert body.startswith("not live: FAILED (last disconnect: network:")
        assert (await http(server, "/readyz"))[0] == 503


async def test_routing_methods_and_malformed_requests() -> None:
    fake = FakeConnection()
    async with HealthServer(fake) as server:
        assert await http(server, "/readyz") == (503, "not ready: DISCONNECTED\n"), "not started"
        assert await http(server, "/livez") == (200, "live: DISCONNECTED\n")
        fake.states.on_next(ConnectionState.CONNECTED)
        assert await http(server, "/readyz?verbose") == (200, "ready: CONNECTED\n")
        assert (await http(server, "/healthz"))[0] == 404
        assert (await http(server, "/"))[0] == 404
        assert (await http(server, "/readyz", "POST"))[0] == 405
        assert await http(server, "/livez", "HEAD") == (200, ""), "HEAD: headers only"
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"garbage\r\n\r\n")
        response = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert response.startswith(b"HTTP/1.1 400 ")
        fake.lost.on_next(Disconnect(0x8D, "keep alive timeout", DisconnectSource.KEEPALIVE))
        fake.states.on_next(ConnectionState.RECONNECTING)
        assert await http(server, "/readyz") == (
            503,
            "not ready: RECONNECTING (last disconnect: keepalive: 0x8D keep alive timeout)\n",
        )
        with pytest.raises(urllib.error.HTTPError, match="503"):
            await asyncio.to_thread(urllib.request.urlopen, f"{server.url}/readyz", None, 5)
        port = server.port
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_server_arguments_are_checked_at_once() -> None:
    fake = FakeConnection()
    with pytest.raises(TypeError, match=r"^conn:"):
        HealthServer("not a connection")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^port:"):
        HealthServer(fake, port=70000)
    with pytest.raises(TypeError, match=r"^port:"):
        HealthServer(fake, port="80")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^host:"):
        HealthServer(fake, host="")
    with pytest.raises(RuntimeError, match=r"^port: the server is not started"):
        _ = HealthServer(fake).port
    with pytest.raises(ValueError, match=r"^interval:"):
        HealthFile(fake, "/tmp/x", interval=0)
    with pytest.raises(TypeError, match=r"^probe:"):
        HealthFile(fake, "/tmp/x", probe="ready")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^path:"):
        HealthFile(fake, 42)  # type: ignore[arg-type]


@pytest.mark.broker
async def test_health_file_exists_only_while_connected_and_is_touched(
    rxmqtt_mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    live = tmp_path / "live"
    conn = k8s_single_node().connect(settings_for(rxmqtt_mosquitto.host, rxmqtt_mosquitto.port))
    async with (
        conn,
        HealthFile(conn, ready, interval=0.05) as ready_file,
        HealthFile(conn, live, interval=0.05, probe=Probe.LIVE),
    ):
        assert live.exists(), "alive from the start"
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        assert ready.read_text() == "ready: CONNECTED\n", "written on the state change itself"
        first = mtime_ns(ready)
        os.utime(ready, ns=(first - 10**9, first - 10**9))
        await wait_until_touched(ready, first - 10**9)
        rxmqtt_mosquitto.stop()
        await conn.wait_for(ConnectionState.RECONNECTING, 5)
        assert not ready.exists(), "removed the moment the connection is lost"
        assert live.exists()
        assert ready_file.last_error is None
        rxmqtt_mosquitto.start()
        await conn.wait_for(ConnectionState.CONNECTED, 10)
        assert ready.exists()
    assert not ready.exists(), "a stopped application is not ready"
    assert not live.exists()
    assert not hidden_files(tmp_path), "no temp files left behind"


def mtime_ns(path: Path) -> int:
    return path.stat().st_mtime_ns


def hidden_files(directory: Path) -> list[Path]:
    return list(directory.glob(".*"))


async def wait_until_touched(path: Path, older_than_ns: int, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while mtime_ns(path) <= older_than_ns:
        if loop.time() > deadline:
            raise TimeoutError(f"{path} was not touched within {timeout}s")
        await asyncio.sleep(0.02)


async def test_health_file_reports_write_errors_without_raising(tmp_path: Path) -> None:
    fake = FakeConnection()
    target = tmp_path / "missing-dir" / "ready"
    async with HealthFile(fake, target, interval=0.05) as health:
        fake.states.on_next(ConnectionState.CONNECTED)
        assert health.last_error is not None
        assert not target.exists()


@pytest.mark.broker
async def test_health_over_a_connection_in_another_thread(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    """The probes also follow a connection run with start_in_thread()."""
    conn = Connection(settings_for(rxmqtt_mosquitto.host, rxmqtt_mosquitto.port))
    runner = conn.start_in_thread()
    try:
        async with HealthServer(conn) as server:
            await wait_for_status(server, "/readyz", 200, 5)
    finally:
        await asyncio.to_thread(runner.stop)
