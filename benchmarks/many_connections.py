"""Many connections in one process: what a gateway or a fleet simulator pays per connection.

N connections (``--connections``, default 1,000) in one process to one Mosquitto, keep-alive
10 s, each with one QoS 1 subscription to a topic of its own. Measured:

- **time to all connected**: from the first connection started until every one is connected
  and its subscription granted;
- **memory per connection**: the process's resident memory after the connections minus before
  them, divided by N (and, in a second run under ``tracemalloc``, the Python heap per
  connection with its biggest holders);
- **idle CPU**: the whole process's CPU time (``time.process_time()``: user + system, all
  threads) over an idle period, as a share of one core;
- **reconnect**: the broker is stopped, stays down, and starts again on the same port; the time
  from the moment it accepts again until every connection is connected (and until every
  subscription is granted again);
- **delivery**: after the restart, one QoS 1 message to each connection's topic; each must
  arrive exactly once (checked, never timed).

Each client library runs in a process of its own, so memory and CPU are attributable; the
benchmark process starts the broker, restarts it, and reads the child's measurements (JSON
lines on its stdout). ``python -m benchmarks.many_connections --child rxmqtt|gmqtt ...`` is the
child; ``python -m benchmarks --only many --connections N`` runs the scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import logging
import os
import pstats
import resource
import select
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rxmqtt import (
    Backoff,
    Connection,
    ConnectionSettings,
    ConnectionState,
    Jitter,
    ReconnectPolicy,
)

LIBRARIES = ("rxmqtt", "gmqtt")
KEEP_ALIVE = 10
TOPIC = "bench/many/{}"
BACKOFF = Backoff(initial=0.25, maximum=1.0, multiplier=2.0, jitter=Jitter.FULL)
"""rxmqtt's reconnect backoff here: full jitter, so a delay is anywhere in [0, 1] s."""
JITTER_WINDOW = BACKOFF.maximum
"""The longest delay the backoff can still have pending when the broker returns."""
GMQTT_RECONNECT_DELAY = 1.0
"""gmqtt has one fixed reconnect delay (no jitter); the same window."""
RECONNECT_TARGET = JITTER_WINDOW + 1.0
"""Every connection back within the jitter window plus one second of the broker accepting."""
DOWN_FOR = 2.0
"""Seconds the broker stays down: the backoff (0.25, 0.5, 1, ...) reaches its maximum."""
POLL = 0.01
"""How often the child looks at its connections' states while waiting (not while idle)."""
STEP_TIMEOUT = 120.0
"""Bound on every wait of the child and of the parent: only a hang reaches it."""

_REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- measurements


@dataclass(slots=True)
class Measures:
    """What one child measured (``None``: that step did not complete)."""

    library: str
    connections: int
    connect_seconds: float | None = None
    rss_per_connection: float | None = None
    """Bytes of resident memory per connection."""
    idle_cpu_percent: float | None = None
    """Percent of one core, the whole process, while idle."""
    idle_seconds: float | None = None
    reconnect_seconds: float | None = None
    """From the broker accepting again to every connection connected."""
    resubscribe_seconds: float | None = None
    """From the broker accepting again to every subscription granted again."""
    received: int | None = None
    unique: int | None = None
    traced_per_connection: float | None = None
    """Bytes of Python heap per connection (``tracemalloc``), from the traced run."""
    top_holders: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def delivered_once(self) -> bool:
        return self.received == self.connections and self.unique == self.connections


def raise_file_limit(wanted: int) -> None:
    """Raise this process's open-file limit towards ``wanted`` (within the hard limit); the
    broker and the children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def files_needed(connections: int) -> int:
    """Descriptors for ``connections`` clients (or their broker side), with room to spare."""
    return 2 * connections + 256


def resident_bytes() -> int | None:
    """This process's resident set size now (Linux ``/proc``; ``None`` elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


# --------------------------------------------------------------------------- the child


class _Report:
    """The child's side of the conversation: one JSON object per line on stdout."""

    def __init__(self) -> None:
        self._out = sys.stdout

    def send(self, **values: Any) -> None:
        self._out.write(json.dumps(values) + "\n")
        self._out.flush()


async def _until(predicate: Callable[[], bool], what: str, timeout: float = STEP_TIMEOUT) -> float:
    """Poll ``predicate`` every :data:`POLL`; the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(POLL)
    return time.monotonic()


async def _idle_cpu(seconds: float) -> tuple[float, float]:
    """(percent of one core, wall seconds) the process used while doing nothing itself."""
    gc.collect()
    await asyncio.sleep(1.0)  # let the last acknowledgements and timers settle
    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - wall
    return (time.process_time() - cpu) / wall * 100, wall


class _Clients:
    """One library's N clients, as the child drives them."""

    library = ""

    async def connect_all(self) -> None:
        """Start every client and return once each is connected and subscribed."""
        raise NotImplementedError

    def connected(self) -> int:
        raise NotImplementedError

    async def all_subscribed(self) -> None:
        """Return once every subscription is granted on the current connections."""
        raise NotImplementedError

    async def publish_each(self) -> None:
        """One QoS 1 message to each client's topic (its index as payload), acknowledged."""
        raise NotImplementedError

    def received(self) -> list[int]:
        raise NotImplementedError

    async def close_all(self) -> None:
        raise NotImplementedError


class _RxClients(_Clients):
    library = "rxmqtt"

    def __init__(self, host: str, port: int, count: int) -> None:
        self.host, self.port, self.count = host, port, count
        self.conns: list[Connection] = []
        self.got: list[int] = []

    def _settings(self, name: str) -> ConnectionSettings:
        return ConnectionSettings(
            host=self.host,
            port=self.port,
            client_id=name,
            keep_alive=KEEP_ALIVE,
            clean_start=True,
            session_expiry=0,
        )

    async def connect_all(self) -> None:
        policy = ReconnectPolicy(backoff=BACKOFF)
        got = self.got
        for index in range(self.count):
            conn = Connection(self._settings(f"many-rx-{index}"), reconnect=policy)
            conn.messages(TOPIC.format(index), qos=1).subscribe(
                lambda message: got.append(int(message.payload))
            )
            self.conns.append(conn)
        for conn in self.conns:
            conn.start()
        await _until(lambda: self.connected() == self.count, "rxmqtt: all connected")
        await self.all_subscribed()

    def connected(self) -> int:
        return sum(1 for conn in self.conns if conn.state is ConnectionState.CONNECTED)

    async def all_subscribed(self) -> None:
        # subscribe() on a live filter waits until the broker granted it on this connection;
        # unsubscribe() then releases that hold (the messages() reader keeps the filter).
        async def granted(index: int, conn: Connection) -> None:
            await conn.subscribe(TOPIC.format(index), qos=1)
            await conn.unsubscribe(TOPIC.format(index))

        await asyncio.wait_for(
            asyncio.gather(*(granted(i, c) for i, c in enumerate(self.conns))), STEP_TIMEOUT
        )

    async def publish_each(self) -> None:
        async with Connection(self._settings("many-rx-publisher")) as publisher:
            await publisher.wait_for(ConnectionState.CONNECTED, timeout=STEP_TIMEOUT)
            outcomes = [
                publisher.publish(TOPIC.format(i), str(i).encode(), qos=1)
                for i in range(self.count)
            ]
            await asyncio.wait_for(asyncio.gather(*outcomes), STEP_TIMEOUT)

    def received(self) -> list[int]:
        return self.got

    async def close_all(self) -> None:
        await asyncio.gather(*(conn.close() for conn in self.conns))


class _GmqttClients(_Clients):
    library = "gmqtt"

    def __init__(self, host: str, port: int, count: int) -> None:
        self.host, self.port, self.count = host, port, count
        self.clients: list[Any] = []
        self.subscribed: set[int] = set()
        self.got: list[int] = []

    def _client(self, name: str) -> Any:
        import gmqtt  # type: ignore[import-untyped]

        # gmqtt logs every refused reconnect and write to a closed socket at WARNING: a
        # thousand lines per restart here.
        logging.getLogger("gmqtt").setLevel(logging.CRITICAL)

        client = gmqtt.Client(name, clean_session=True)
        client.set_config({"reconnect_retries": -1, "reconnect_delay": GMQTT_RECONNECT_DELAY})
        return client

    async def connect_all(self) -> None:
        from gmqtt.mqtt.constants import MQTTv50  # type: ignore[import-untyped]

        got, subscribed = self.got, self.subscribed
        for index in range(self.count):
            client = self._client(f"many-gm-{index}")
            topic = TOPIC.format(index)

            # gmqtt does not re-subscribe after a session was lost: its documentation
            # subscribes in on_connect, which runs after every (re)connection.
            def on_connect(c: Any, _flags: Any, _rc: Any, _props: Any, topic: str = topic) -> None:
                c.subscribe(topic, qos=1)

            def on_subscribe(_c: Any, _mid: Any, _qos: Any, _props: Any, i: int = index) -> None:
                subscribed.add(i)

            def on_disconnect(_c: Any, _packet: Any, i: int = index, **_kw: Any) -> None:
                subscribed.discard(i)

            def on_message(_c: Any, _topic: str, payload: bytes, _qos: int, _props: Any) -> int:
                got.append(int(payload))
                return 0

            client.on_connect = on_connect
            client.on_subscribe = on_subscribe
            client.on_disconnect = on_disconnect
            client.on_message = on_message
            self.clients.append(client)
        await asyncio.gather(
            *(
                c.connect(self.host, self.port, keepalive=KEEP_ALIVE, version=MQTTv50)
                for c in self.clients
            )
        )
        await self.all_subscribed()

    def connected(self) -> int:
        return sum(1 for client in self.clients if client.is_connected)

    async def all_subscribed(self) -> None:
        await _until(lambda: len(self.subscribed) == self.count, "gmqtt: all subscribed")

    async def publish_each(self) -> None:
        from gmqtt.mqtt.constants import MQTTv50

        publisher = self._client("many-gm-publisher")
        publisher.on_message = lambda *_: 0
        await publisher.connect(self.host, self.port, keepalive=KEEP_ALIVE, version=MQTTv50)
        try:
            for i in range(self.count):
                while True:
                    try:
                        publisher.publish(TOPIC.format(i), str(i).encode(), qos=1)
                        break
                    except OverflowError:  # every packet id in use: wait for PUBACKs
                        await asyncio.sleep(0)
                if i % 100 == 99:
                    await asyncio.sleep(0)
            # (gmqtt has no per-publish acknowledgement: the arrivals are counted instead)
            await _until(lambda: len(self.got) >= self.count, "gmqtt: every message arrived")
        finally:
            await publisher.disconnect()

    def received(self) -> list[int]:
        return self.got

    async def close_all(self) -> None:
        await asyncio.gather(*(client.disconnect() for client in self.clients))


def _clients(library: str, host: str, port: int, count: int) -> _Clients:
    if library == "gmqtt":
        return _GmqttClients(host, port, count)
    return _RxClients(host, port, count)


async def _child(library: str, host: str, port: int, count: int, idle: float) -> None:
    """The measured run, step by step, each result reported as soon as it is known."""
    report = _Report()
    raise_file_limit(files_needed(count))
    clients = _clients(library, host, port, count)
    gc.collect()
    before = resident_bytes()
    start = time.monotonic()
    await clients.connect_all()
    report.send(step="connected", connect_seconds=time.monotonic() - start)
    cpu, wall = await _idle_cpu(idle)
    gc.collect()
    after = resident_bytes()
    rss = None if before is None or after is None else (after - before) / count
    report.send(step="idle", idle_cpu_percent=cpu, idle_seconds=wall, rss_per_connection=rss)
    await _until(lambda: clients.connected() == 0, f"{library}: every link lost")
    report.send(step="down")
    accepted = json.loads(await asyncio.to_thread(sys.stdin.readline))["accepted"]
    back = await _until(lambda: clients.connected() == count, f"{library}: all reconnected")
    await clients.all_subscribed()
    report.send(
        step="reconnected",
        reconnect_seconds=back - accepted,
        resubscribe_seconds=time.monotonic() - accepted,
    )
    await clients.publish_each()
    got = clients.received()
    with contextlib.suppress(TimeoutError):
        await _until(lambda: len(got) >= count, f"{library}: every message", timeout=30)
    await asyncio.sleep(0.5)  # a duplicate would arrive now
    report.send(step="delivered", received=len(got), unique=len(set(got)))
    await clients.close_all()


async def _traced_child(library: str, host: str, port: int, count: int, top: int) -> None:
    """Connect ``count`` clients under ``tracemalloc``: heap bytes per connection, and where."""
    report = _Report()
    raise_file_limit(files_needed(count))
    clients = _clients(library, host, port, count)
    gc.collect()
    tracemalloc.start(1)
    base = tracemalloc.take_snapshot()
    await clients.connect_all()
    await asyncio.sleep(1.0)
    gc.collect()
    snapshot = tracemalloc.take_snapshot()
    traced = sum(s.size for s in snapshot.statistics("filename")) - sum(
        s.size for s in base.statistics("filename")
    )
    holders = [
        f"{stat.size_diff / count:,.0f} B/conn {stat.traceback[0].filename.rsplit('/', 2)[-1]}:"
        f"{stat.traceback[0].lineno}"
        for stat in snapshot.compare_to(base, "lineno")[:top]
    ]
    tracemalloc.stop()
    report.send(step="traced", traced_per_connection=traced / count, top_holders=holders)
    await clients.close_all()


# --------------------------------------------------------------------------- the parent


class _ChildProcess:
    """A child run, read step by step (every read bounded)."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.many_connections", *args],
            cwd=_REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def read(self, step: str, timeout: float = STEP_TIMEOUT) -> dict[str, Any]:
        """The child's report of ``step``; an error if it says something else, dies or hangs."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            status = "hung" if not ready else f"exited {self.proc.poll()}"
            raise RuntimeError(f"child {status} before reporting {step!r}")
        values: dict[str, Any] = json.loads(line)
        if values.pop("step", None) != step:
            raise RuntimeError(f"child reported {line.strip()!r}, expected {step!r}")
        return values

    def tell(self, **values: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(values) + "\n")
        self.proc.stdin.flush()

    def finish(self) -> None:
        try:
            self.proc.wait(STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _common_args(library: str, host: str, port: int, count: int) -> list[str]:
    return ["--child", library, "--host", host, "--port", str(port), "--connections", str(count)]


def measure(library: str, count: int, idle: float, broker: Any) -> Measures:
    """One library's measured run against ``broker`` (a ``MosquittoBroker``, restarted here)."""
    measures = Measures(library, count)
    args = _common_args(library, broker.host, broker.port, count)
    child = _ChildProcess([*args, "--idle", str(idle)])
    try:
        measures.connect_seconds = child.read("connected")["connect_seconds"]
        idle_values = child.read("idle", timeout=idle + STEP_TIMEOUT)
        measures.idle_cpu_percent = idle_values["idle_cpu_percent"]
        measures.idle_seconds = idle_values["idle_seconds"]
        measures.rss_per_connection = idle_values["rss_per_connection"]
        broker.stop()
        child.read("down")
        time.sleep(DOWN_FOR)
        broker.start()
        child.tell(accepted=time.monotonic())
        back = child.read("reconnected")
        measures.reconnect_seconds = back["reconnect_seconds"]
        measures.resubscribe_seconds = back["resubscribe_seconds"]
        delivered = child.read("delivered")
        measures.received, measures.unique = delivered["received"], delivered["unique"]
        if not measures.delivered_once:
            measures.errors.append(
                f"{library}: {measures.received}/{count} messages received after the restart "
                f"({measures.unique} unique)"
            )
        child.finish()
    except Exception as exc:
        measures.errors.append(f"{library}: {exc}")
        child.kill()
        broker.start()  # (no-op when running) the next run needs it
    return measures


def measure_heap(library: str, count: int, broker: Any, measures: Measures, top: int = 6) -> None:
    """Add the ``tracemalloc`` run's heap per connection and its biggest holders."""
    args = _common_args(library, broker.host, broker.port, count)
    child = _ChildProcess([*args, "--trace", str(top)])
    try:
        traced = child.read("traced")
        measures.traced_per_connection = traced["traced_per_connection"]
        measures.top_holders = traced["top_holders"]
        child.finish()
    except Exception as exc:
        measures.errors.append(f"{library} (tracemalloc run): {exc}")
        child.kill()


# --------------------------------------------------------------------------- entry point


async def _profile(library: str, host: str, port: int, count: int, idle: float, top: int) -> None:
    """Connect ``count`` clients, then cProfile the idle period and print where its CPU went."""
    raise_file_limit(files_needed(count))
    clients = _clients(library, host, port, count)
    await clients.connect_all()
    gc.collect()
    await asyncio.sleep(1.0)
    profile = cProfile.Profile()
    cpu, wall = time.process_time(), time.monotonic()
    profile.enable()
    await asyncio.sleep(idle)
    profile.disable()
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    print(
        f"{library}: {count:,} idle connections, {cpu / wall * 100:.2f} % of a core "
        f"({cpu / wall / count * 1e6:.1f} µs CPU per connection per second, under cProfile)"
    )
    pstats.Stats(profile).sort_stats("tottime").print_stats(top)
    await clients.close_all()


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="many connections: the scenario's child (--child), or a cProfile of the "
        "idle period against a broker of its own (--library)"
    )
    parser.add_argument("--child", choices=LIBRARIES, help="run as the scenario's child")
    parser.add_argument("--library", choices=LIBRARIES, default="rxmqtt")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--connections", type=int, default=1_000)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--trace", type=int, default=0, help="tracemalloc run, top N holders")
    parser.add_argument("--top", type=int, default=25, help="profile: functions to print")
    args = parser.parse_args(argv)
    if args.child is None:
        from benchmarks._common import bench_broker

        raise_file_limit(files_needed(args.connections) * 2)
        with bench_broker() as broker:
            host, port = broker.host, broker.port
            asyncio.run(_profile(args.library, host, port, args.connections, args.idle, args.top))
        return
    run: Coroutine[Any, Any, None]
    if args.trace:
        run = _traced_child(args.child, args.host, args.port, args.connections, args.trace)
    else:
        run = _child(args.child, args.host, args.port, args.connections, args.idle)
    asyncio.run(run)


if __name__ == "__main__":
    _main()
