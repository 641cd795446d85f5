"""Kubernetes readiness and liveness probes driven by a connection's streams.

- :class:`HealthServer`: a tiny HTTP/1.1 endpoint on the asyncio loop (no dependency, no thread)
  answering ``GET /readyz`` (200 only while ``CONNECTED``) and ``GET /livez`` (200 unless
  ``FAILED``) for ``httpGet`` probes.
- :class:`HealthFile`: a file that exists, and is touched every ``interval``, only while the
  connection is healthy, for ``exec`` probes (``test -f``, or a freshness check that also
  catches a wedged event loop).

Readiness means "route work to me": only a connected client can publish and receive now.
Liveness means "restart me if false": only ``FAILED`` (the reconnect policy gave up, or a fatal
reason code such as bad credentials) is something a restart may cure; a broker that is down is
not, so a reconnecting client stays live. See ``docs/kubernetes.md`` for a pod spec.

Both follow ``connection_state`` (and show the last ``disconnects`` reason), so they are correct
the moment the state changes, with no polling of the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from reactivex import Observable
from reactivex.abc import DisposableBase

from ._scoped import AsyncStartedOnEnter, once_started
from .lifecycle import ConnectionState, Disconnect

__all__ = ["HealthFile", "HealthServer", "HealthSource", "Probe", "is_live", "is_ready"]

log = logging.getLogger("rxmqtt.health")

_MAX_REQUEST_HEAD = 8192
_REQUEST_TIMEOUT = 5.0


class HealthSource(Protocol):
    """What the probes watch: a :class:`~rxmqtt.Connection` (or anything shaped like one)."""

    @property
    def connection_state(self) -> Observable[ConnectionState]: ...

    @property
    def disconnects(self) -> Observable[Disconnect]: ...


class Probe(enum.Enum):
    """Which question a probe answers."""

    READY = "ready"
    """Connected now: send work here (``/readyz``)."""
    LIVE = "live"
    """Not given up: no restart needed (``/livez``)."""


def is_ready(state: ConnectionState) -> bool:
    """Readiness: only a ``CONNECTED`` client can publish and receive right now."""
    return state is ConnectionState.CONNECTED


def is_live(state: ConnectionState) -> bool:
    """Liveness: everything but ``FAILED``; reconnecting is healthy behaviour, not a fault."""
    return state is not ConnectionState.FAILED


def _check_source(source: object) -> HealthSource:
    if not (hasattr(source, "connection_state") and hasattr(source, "disconnects")):
        raise TypeError(
            "conn: must be a Connection (with connection_state and disconnects), "
            f"got {type(source).__name__}"
        )
    return source


class _Watch:
    """The latest state and disconnect of a source, kept from its streams."""

    def __init__(
        self,
        source: HealthSource,
        on_change: Callable[[ConnectionState], None] | None = None,
    ) -> None:
        self.state = ConnectionState.DISCONNECTED
        self.last_disconnect: Disconnect | None = None
        self._subscriptions: list[DisposableBase] = []
        self._source = source
        self._on_change = on_change

    def start(self) -> None:
        if not self._subscriptions:
            self._subscriptions = [
                self._source.disconnects.subscribe(self._on_disconnect),
                self._source.connection_state.subscribe(self._on_state),
            ]

    def stop(self) -> None:
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription.dispose()

    def _on_disconnect(self, disconnect: Disconnect) -> None:
        self.last_disconnect = disconnect

    def _on_state(self, state: ConnectionState) -> None:
        self.state = state
        if self._on_change is not None:
            self._on_change(state)

    def describe(self) -> str:
        text = self.state.name
        if self.state is not ConnectionState.CONNECTED and self.last_disconnect is not None:
            text += f" (last disconnect: {self.last_disconnect})"
        return text


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


class HealthServer(AsyncStartedOnEnter):
    """HTTP probes for a connection: ``/readyz`` and ``/livez`` on ``host:port``.

    ``GET`` (or ``HEAD``) ``/readyz`` answers 200 while the connection is ``CONNECTED`` and 503
    otherwise; ``/livez`` answers 200 unless it is ``FAILED``. The body is one line of text with
    the state and, when not connected, the last disconnect reason. Any other path is 404, any
    other method 405. Query strings are ignored (``/readyz?verbose`` works). Each response
    closes its connection, as probes open a new one each time.

    Start and stop it with the loop: ``async with HealthServer(conn, port=8080):`` (or
    :meth:`start`/:meth:`stop`). ``port=0`` binds a free port; read it from :attr:`port`. The
    server runs on the running asyncio loop; no thread, no dependency.

    Args:
        conn: the connection to report on (anything with ``connection_state`` and
            ``disconnects``).
        host: address to listen on; ``"0.0.0.0"`` in a pod so the kubelet can reach it.
        port: TCP port, 0 for any free one.
    """

    def __init__(self, conn: HealthSource, host: str = "127.0.0.1", port: int = 0) -> None:
        self._watch = _Watch(_check_source(conn))
        if not isinstance(host, str) or not host:
            raise TypeError(f"host: must be a non-empty str, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int):
            raise TypeError(f"port: must be an int, got {port!r}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port: must be between 0 and 65535, got {port!r}")
        self._host = host
        self._requested_port = port
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def host(self) -> str:
        """The address it listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        return once_started(
            self._port, "port: the server is not started; use `async with` or start()"
        )

    @property
    def url(self) -> str:
        """``http://host:port`` (IPv6 hosts in brackets)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def state(self) -> ConnectionState:
        """The state the probes currently report."""
        return self._watch.state

    async def start(self) -> None:
        """Start following the connection and listening. Raises ``OSError`` if it cannot bind."""
        if self._server is not None:
            raise RuntimeError("start: already started")
        self._watch.start()
        try:
            self._server = await asyncio.start_server(
                self._on_client, self._host, self._requested_port, limit=_MAX_REQUEST_HEAD
            )
        except BaseException:
            self._watch.stop()
            raise
        self._port = int(self._server.sockets[0].getsockname()[1])
        log.info("health probes on %s (/readyz, /livez)", self.url)

    async def stop(self) -> None:
        """Stop listening and following the connection. Idempotent."""
        server, self._server = self._server, None
        self._watch.stop()
        if server is None:
            return
        server.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        if handlers:
            await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()

    def response_for(self, method: str, target: str) -> tuple[int, str]:
        """The status and body for one request (the routing, separate from the I/O)."""
        path = target.split("?", 1)[0]
        if path not in ("/readyz", "/livez"):
            return 404, f"not found: {path} (try /readyz or /livez)\n"
        if method not in ("GET", "HEAD"):
            return 405, f"method not allowed: {method}\n"
        state = self._watch.state
        if path == "/readyz":
            healthy, word = is_ready(state), "ready"
        else:
            healthy, word = is_live(state), "live"
        if not healthy:
            word = f"not {word}"
        return (200 if healthy else 503), f"{word}: {self._watch.describe()}\n"

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await self._serve_one(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the prober went away; nothing to answer
        finally:
            if task is not None:
                self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        method = "GET"
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _REQUEST_TIMEOUT)
        except (asyncio.LimitOverrunError, TimeoutError):
            status, body = 400, "bad request: header too large or too slow\n"
        else:
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split()
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                status, body = 400, f"bad request line: {request_line!r}\n"
            else:
                method = parts[0]
                status, body = self.response_for(method, parts[1])
        payload = body.encode("utf-8")
        head_out = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(payload)}\r\n"
            "Cache-Control: no-store\r\n"
            "Connection: close\r\n\r\n"
        ).encode("ascii")
        writer.write(head_out if method == "HEAD" else head_out + payload)
        await writer.drain()


class HealthFile(AsyncStartedOnEnter):
    """A file that exists only while the connection is healthy, for ``exec`` probes.

    While healthy (``probe=Probe.READY``: ``CONNECTED``; ``Probe.LIVE``: not ``FAILED``) the
    file holds the state and is re-touched every ``interval`` seconds; the moment the state
    turns unhealthy, and when the HealthFile stops, it is removed. So ``test -f PATH`` answers
    the probe, and a freshness check such as
    ``test $(( $(date +%s) - $(stat -c %Y PATH) )) -lt 30`` also fails when the event loop is
    wedged and stops touching it. Writes are atomic (temp file + rename).

    Use with the loop: ``async with HealthFile(conn, "/tmp/ready"):``.

    Args:
        conn: the connection to report on.
        path: the file (its directory must exist and be writable).
        interval: seconds between touches while healthy; > 0.
        probe: :attr:`Probe.READY` (default) or :attr:`Probe.LIVE`.
    """

    def __init__(
        self,
        conn: HealthSource,
        path: str | os.PathLike[str],
        interval: float = 5.0,
        *,
        probe: Probe = Probe.READY,
    ) -> None:
        self._watch = _Watch(_check_source(conn), self._on_state)
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"path: must be a str or os.PathLike, got {type(path).__name__}")
        self._path = Path(path)
        if not str(path):
            raise ValueError("path: must not be empty")
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            raise TypeError(f"interval: must be a number of seconds, got {interval!r}")
        if not (math.isfinite(interval) and interval > 0):
            raise ValueError(f"interval: must be > 0 seconds, got {interval!r}")
        if not isinstance(probe, Probe):
            raise TypeError(f"probe: must be a Probe, got {probe!r}")
        self._interval = float(interval)
        self._probe = probe
        self._task: asyncio.Task[None] | None = None
        self._running = False
        self.last_error: OSError | None = None
        """The last error writing or removing the file (it is logged, never raised)."""

    @property
    def path(self) -> Path:
        """The file."""
        return self._path

    @property
    def healthy(self) -> bool:
        """Whether the file should exist now."""
        state = self._watch.state
        return self._running and (is_ready(state) if self._probe is Probe.READY else is_live(state))

    async def start(self) -> None:
        """Start following the connection (the file appears at once if healthy)."""
        if self._running:
            raise RuntimeError("start: already started")
        self._running = True
        self._watch.start()  # replays the current state: writes or removes the file now
        self._task = asyncio.get_running_loop().create_task(self._touch_periodically())

    async def stop(self) -> None:
        """Stop, and remove the file: a stopped application is not healthy. Idempotent."""
        if not self._running:
            return
        self._running = False
        self._watch.stop()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._remove()

    def _on_state(self, state: ConnectionState) -> None:
        if not self._running:
            return
        if self.healthy:
            self._write()
        else:
            self._remove()

    async def _touch_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if self.healthy:
                self._write()

    def _write(self) -> None:
        text = f"{self._probe.value}: {self._watch.describe()}\n"
        try:
            fd, temp = tempfile.mkstemp(prefix=f".{self._path.name}.", dir=self._path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                os.replace(temp, self._path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
        except OSError as exc:
            self._failed(exc)

    def _remove(self) -> None:
        try:
            self._path.unlink(missing_ok=True)
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        if self.last_error is None or str(self.last_error) != str(exc):
            log.error("health file %s: %s", self._path, exc)
        self.last_error = exc
