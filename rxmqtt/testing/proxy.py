"""FaultProxy: a loopback TCP proxy that can black-hole, delay, reset or refuse connections.

The proxy runs its own asyncio loop in a daemon thread, so it can be driven from sync tests,
from async tests running another loop, and from a Qt application alike. Every control method
blocks until the change is in effect on the proxy's loop, so a test can rely on it immediately.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import socket
import struct
import threading
import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

from rxmqtt.testing.broker import LOOPBACK, free_port

__all__ = ["FaultProxy", "ProxiedConnection"]

_T = TypeVar("_T")
_READ_SIZE = 65536
_CALL_TIMEOUT = 10.0
_LINGER_RST = struct.pack("ii", 1, 0)


def _set_rst_on_close(sock: Any) -> None:
    """Make close() send RST instead of FIN (SO_LINGER on, timeout 0)."""
    with contextlib.suppress(OSError, AttributeError, ValueError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)


class _Direction:
    """One half of a proxied connection: reads from ``reader``, delivers to ``writer``."""

    def __init__(
        self,
        conn: ProxiedConnection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.conn = conn
        self.reader = reader
        self.writer = writer
        # (deliver_at, data); data None marks end of stream from the source side.
        self.queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()
        self.bytes_in = 0
        self.bytes_out = 0
        self.source_reset = False

    async def pump(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await self.reader.read(_READ_SIZE)
            except (ConnectionError, OSError):
                self.source_reset = True
                data = b""
            if not data:
                self.queue.put_nowait((loop.time() + self.conn._delay, None))
                return
            self.bytes_in += len(data)
            if self.conn._blackholed:
                continue  # black hole: read and discard, so the sender never blocks
            self.queue.put_nowait((loop.time() + self.conn._delay, data))

    async def deliver(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            deliver_at, data = await self.queue.get()
            wait = deliver_at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                # The end of stream (FIN/RST) is held back while black-holed, like on a real
                # network where it would be lost and retransmitted later.
                while self.conn._blackholed:
                    await self.conn._unblocked.wait()
                await self.conn._source_ended(self)
                return
            if self.conn._blackholed:
                continue
            if not await self.write(data):
                return

    async def write(self, data: bytes) -> bool:
        """Write to the destination; on failure close the whole connection."""
        try:
            self.bytes_out += len(data)  # count first: the peer may see the bytes at once
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError):
            await self.conn._abort()
            return False
        return True


class ProxiedConnection:
    """One client connection through a :class:`FaultProxy`, with its own fault controls.

    Control methods are thread-safe and return once the change is in effect. Byte counters:
    ``bytes_to_server``/``bytes_to_client`` count bytes written to that side (injected ones
    included); ``bytes_from_client``/``bytes_from_server`` count bytes read from that side.
    """

    def __init__(
        self,
        proxy: FaultProxy,
        conn_id: int,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        server: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        *,
        blackholed: bool,
        delay: float,
    ) -> None:
        self._proxy = proxy
        self.id = conn_id
        self._client_writer = client[1]
        self._server_writer = server[1]
        peer = client[1].get_extra_info("peername")
        self.client_address: tuple[str, int] = (peer[0], peer[1]) if peer else ("?", 0)
        target = server[1].get_extra_info("peername")
        self.server_address: tuple[str, int] = (target[0], target[1]) if target else ("?", 0)
        self._blackholed = blackholed
        self._delay = delay
        self._unblocked = asyncio.Event()
        if not blackholed:
            self._unblocked.set()
        self._up = _Direction(self, client[0], server[1])
        self._down = _Direction(self, server[0], client[1])
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._closed_event = threading.Event()
        self.close_reason: str | None = None

    def _start(self) -> None:
        for coro in (self._up.pump(), self._up.deliver(), self._down.pump(), self._down.deliver()):
            task = asyncio.get_running_loop().create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # ----------------------------------------------------------------- public, any thread

    @property
    def bytes_to_server(self) -> int:
        """Bytes written to the broker side (forwarded plus injected)."""
        return self._up.bytes_out

    @property
    def bytes_to_client(self) -> int:
        """Bytes written to the client side (forwarded plus injected)."""
        return self._down.bytes_out

    @property
    def bytes_from_client(self) -> int:
        """Bytes read from the client (including any discarded while black-holed)."""
        return self._up.bytes_in

    @property
    def bytes_from_server(self) -> int:
        """Bytes read from the broker (including any discarded while black-holed)."""
        return self._down.bytes_in

    @property
    def is_open(self) -> bool:
        """Whether both sockets are still open."""
        return not self._closed

    @property
    def is_blackholed(self) -> bool:
        """Whether traffic is currently discarded."""
        return self._blackholed

    @property
    def delay_seconds(self) -> float:
        """Latency currently added to each direction."""
        return self._delay

    def blackhole(self) -> None:
        """Keep both sockets open but forward nothing either way (bytes are discarded)."""
        self._proxy._call(self._set_mode(blackholed=True, delay=self._delay))

    def pass_through(self) -> None:
        """Forward everything without added latency."""
        self._proxy._call(self._set_mode(blackholed=False, delay=0.0))

    def delay(self, seconds: float) -> None:
        """Forward with ``seconds`` of added latency in each direction, preserving order."""
        if seconds < 0:
            raise ValueError(f"delay: seconds must be >= 0, got {seconds}")
        self._proxy._call(self._set_mode(blackholed=False, delay=float(seconds)))

    def reset(self) -> None:
        """Close both sides with RST (SO_LINGER 0): the client sees ECONNRESET."""
        self._proxy._call(self._abort("reset by test"))

    def close(self) -> None:
        """Close both sides gracefully (FIN)."""
        self._proxy._call(self._close_both("closed by test"))

    def inject_to_server(self, data: bytes) -> None:
        """Write ``data`` to the broker now, as if the client sent it (ignores black hole)."""
        self._proxy._call(self._inject(self._up, bytes(data)))

    def inject_to_client(self, data: bytes) -> None:
        """Write ``data`` to the client now, as if the broker sent it (ignores black hole)."""
        self._proxy._call(self._inject(self._down, bytes(data)))

    def wait_closed(self, timeout: float = 5.0) -> None:
        """Block until the connection is closed (by either side or the proxy)."""
        if not self._closed_event.wait(timeout):
            raise TimeoutError(
                f"proxied connection #{self.id} from {self.client_address} still open "
                f"after {timeout:.1f}s"
            )

    def __repr__(self) -> str:
        if self._closed:
            state = f"closed ({self.close_reason})"
        elif self._blackholed:
            state = "blackholed"
        elif self._delay:
            state = f"delay {self._delay}s"
        else:
            state = "pass-through"
        return (
            f"<ProxiedConnection #{self.id} {self.client_address[0]}:{self.client_address[1]} -> "
            f"{self.server_address[0]}:{self.server_address[1]} {state} "
            f"up={self.bytes_to_server}B down={self.bytes_to_client}B>"
        )

    # ----------------------------------------------------------------- loop thread only

    async def _set_mode(self, *, blackholed: bool, delay: float) -> None:
        self._blackholed = blackholed
        self._delay = delay
        if blackholed:
            self._unblocked.clear()
        else:
            self._unblocked.set()

    async def _inject(self, direction: _Direction, data: bytes) -> None:
        if self._closed:
            raise ConnectionError(f"proxied connection #{self.id} is closed")
        await direction.write(data)

    async def _source_ended(self, direction: _Direction) -> None:
        if direction.source_reset:
            await self._abort("reset by peer")
        else:
            side = "client" if direction is self._up else "server"
            await self._close_both(f"closed by {side}")

    async def _close_both(self, reason: str) -> None:
        if self._closed:
            return
        self._mark_closed(reason)
        for writer in (self._client_writer, self._server_writer):
            writer.close()
        await self._wait_writers()

    async def _abort(self, reason: str = "write failed") -> None:
        if self._closed:
            return
        self._mark_closed(reason)
        for writer in (self._client_writer, self._server_writer):
            _set_rst_on_close(writer.get_extra_info("socket"))
            writer.transport.abort()
        await self._wait_writers()

    def _mark_closed(self, reason: str) -> None:
        self._closed = True
        self.close_reason = reason
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        self._unblocked.set()
        self._proxy._forget(self)
        self._closed_event.set()

    async def _wait_writers(self) -> None:
        for writer in (self._client_writer, self._server_writer):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2.0)


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of ``(target_host, target_port)`` with fault modes.

    Proxy-wide modes apply to every current connection and to new ones: :meth:`pass_through`,
    :meth:`blackhole`, :meth:`delay`. :meth:`reset` RSTs the current connections; :meth:`refuse`
    makes new connection attempts fail (ECONNREFUSED, or accept-then-RST with ``reset=True``)
    until :meth:`accept`. Per-connection controls live on :attr:`connections`.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        listen_host: str = LOOPBACK,
        *,
        scheme: str = "mqtt",
        connect_timeout: float = 5.0,
    ) -> None:
        self._target = (target_host, int(target_port))
        self._listen_host = listen_host
        self._scheme = scheme
        self._connect_timeout = connect_timeout
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._blackholed = False
        self._delay = 0.0
        self._refusing = False
        self._refuse_with_reset = False
        self._ids = itertools.count(1)
        self._accepted = 0
        self._cond = threading.Condition()
        self._live: list[ProxiedConnection] = []
        self._pending: set[socket.socket] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # ----------------------------------------------------------------- properties

    @property
    def host(self) -> str:
        """Listening address (``127.0.0.1``)."""
        return self._listen_host

    @property
    def port(self) -> int:
        """Listening port."""
        if self._port is None:
            raise RuntimeError("the proxy has not been started yet; call start()")
        return self._port

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<port>`` (scheme from the constructor, e.g. ``mqtts``)."""
        return f"{self._scheme}://{self.host}:{self.port}"

    @property
    def target(self) -> tuple[str, int]:
        """Where new connections are forwarded."""
        return self._target

    @property
    def connections(self) -> list[ProxiedConnection]:
        """Snapshot of the live proxied connections, oldest first."""
        with self._cond:
            return list(self._live)

    @property
    def accepted(self) -> int:
        """Total number of connections proxied so far (refused ones not counted)."""
        return self._accepted

    @property
    def is_refusing(self) -> bool:
        """Whether new connections are currently refused."""
        return self._refusing

    @property
    def is_blackholed(self) -> bool:
        """Whether the proxy-wide mode is black hole."""
        return self._blackholed

    @property
    def delay_seconds(self) -> float:
        """Proxy-wide latency added to each direction."""
        return self._delay

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        """Start the proxy thread and listen on a free port. No-op if already started."""
        if self._closed:
            raise RuntimeError("the proxy is closed")
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="rxmqtt-FaultProxy", daemon=True)
        self._thread.start()
        ready.wait(_CALL_TIMEOUT)
        try:
            self._call(self._astart())
        except BaseException:
            self.close()
            raise
        self._thread.name = f"rxmqtt-FaultProxy-{self._port}"
        return self

    def close(self) -> None:
        """Close every socket, stop the loop and join the thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._aclose(), loop).result(_CALL_TIMEOUT)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(_CALL_TIMEOUT)
        if thread.is_alive():  # pragma: no cover - would be a bug
            raise RuntimeError("FaultProxy thread did not stop")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        port = self._port if self._port is not None else "?"
        return (
            f"<FaultProxy {self._listen_host}:{port} -> {self._target[0]}:{self._target[1]} "
            f"connections={len(self._live)}>"
        )

    # ----------------------------------------------------------------- controls

    def pass_through(self) -> None:
        """Forward everything, no added latency, on all current and future connections."""
        self._call(self._set_mode(blackholed=False, delay=0.0))

    def blackhole(self) -> None:
        """Keep sockets open but forward nothing (current and future connections)."""
        self._call(self._set_mode(blackholed=True, delay=self._delay))

    def delay(self, seconds: float) -> None:
        """Add ``seconds`` latency to each direction of every connection, preserving order."""
        if seconds < 0:
            raise ValueError(f"delay: seconds must be >= 0, got {seconds}")
        self._call(self._set_mode(blackholed=False, delay=float(seconds)))

    def reset(self) -> None:
        """RST every current connection (and any being set up). New ones are unaffected."""
        self._call(self._reset_all())

    def refuse(self, *, reset: bool = False) -> None:
        """Refuse new connections: ECONNREFUSED (listener shut), or accept-then-RST if ``reset``.

        Existing connections are untouched; combine with :meth:`reset` to cut everything.
        """
        self._call(self._set_refusing(True, reset))

    def accept(self) -> None:
        """Accept new connections again (undoes :meth:`refuse`)."""
        self._call(self._set_refusing(False, False))

    def retarget(self, host: str, port: int) -> None:
        """Forward new connections to ``(host, port)``; current ones keep their target."""
        self._target = (host, int(port))

    def wait_for_connections(self, n: int = 1, timeout: float = 5.0) -> list[ProxiedConnection]:
        """Block until at least ``n`` connections are live; returns them (oldest first)."""
        return self._wait(
            lambda: len(self._live) >= n,
            timeout,
            lambda: (
                f"expected >= {n} live connection(s) through {self!r}, "
                f"have {len(self._live)} after {timeout:.1f}s"
            ),
        )

    def wait_for_accepted(self, n: int, timeout: float = 5.0) -> list[ProxiedConnection]:
        """Block until ``n`` connections in total have been proxied (e.g. after a reconnect)."""
        return self._wait(
            lambda: self._accepted >= n,
            timeout,
            lambda: (
                f"expected >= {n} connection(s) in total through {self!r}, "
                f"got {self._accepted} after {timeout:.1f}s"
            ),
        )

    def wait_for_no_connections(self, timeout: float = 5.0) -> None:
        """Block until every proxied connection is closed."""
        self._wait(
            lambda: not self._live,
            timeout,
            lambda: f"connections still open after {timeout:.1f}s: {self._live!r}",
        )

    # ----------------------------------------------------------------- internals

    def _wait(
        self, predicate: Callable[[], bool], timeout: float, message: Callable[[], str]
    ) -> list[ProxiedConnection]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(message())
                self._cond.wait(remaining)
            return list(self._live)

    def _call(self, coro: Coroutine[Any, Any, _T], timeout: float = _CALL_TIMEOUT) -> _T:
        loop = self._loop
        if loop is None or self._closed or not loop.is_running():
            coro.close()
            raise RuntimeError("the proxy is not running (call start(); not after close())")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("FaultProxy controls must not be called from the proxy's thread")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    def _forget(self, conn: ProxiedConnection) -> None:
        with self._cond:
            if conn in self._live:
                self._live.remove(conn)
            self._cond.notify_all()

    async def _astart(self) -> None:
        last: OSError | None = None
        for _ in range(20):
            port = free_port(self._listen_host)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                # An explicit port (not 0) keeps the port bound while refusing (see refuse()).
                sock.bind((self._listen_host, port))
                sock.listen(128)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            sock.setblocking(False)
            self._listener = sock
            self._port = port
            asyncio.get_running_loop().add_reader(sock, self._on_acceptable)
            return
        raise OSError(f"FaultProxy could not bind a port on {self._listen_host}: {last}")

    async def _aclose(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            asyncio.get_running_loop().remove_reader(listener)
            listener.close()
        await self._reset_all(graceful=True)
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _set_mode(self, *, blackholed: bool, delay: float) -> None:
        self._blackholed = blackholed
        self._delay = delay
        for conn in self.connections:
            await conn._set_mode(blackholed=blackholed, delay=delay)

    async def _reset_all(self, graceful: bool = False) -> None:
        for sock in list(self._pending):
            if not graceful:
                _set_rst_on_close(sock)
            with contextlib.suppress(OSError):
                sock.close()
        self._pending.clear()
        for conn in self.connections:
            if graceful:
                await conn._close_both("proxy closed")
            else:
                await conn._abort("reset by test")

    async def _set_refusing(self, refusing: bool, with_reset: bool) -> None:
        listener = self._listener
        if listener is None:
            raise RuntimeError("the proxy is not listening")
        loop = asyncio.get_running_loop()
        was_shut = self._refusing and not self._refuse_with_reset
        want_shut = refusing and not with_reset
        if want_shut and not was_shut:
            loop.remove_reader(listener)
            # On Linux, shutdown() of a listening socket stops listening (SYNs get RST,
            # i.e. ECONNREFUSED) while the socket stays bound to its port; listen() resumes.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
        elif was_shut and not want_shut:
            try:
                listener.listen(128)
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.EADDRINUSE):
                    raise
                listener = self._rebind_listener(listener)
            loop.add_reader(listener, self._on_acceptable)
        self._refusing = refusing
        self._refuse_with_reset = with_reset and refusing

    def _rebind_listener(self, old: socket.socket) -> socket.socket:
        """Fallback for platforms where a shut-down listener cannot listen() again."""
        old.close()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._listen_host, self.port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._listener = sock
        return sock

    def _on_acceptable(self) -> None:
        listener = self._listener
        if listener is None:
            return
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock.setblocking(False)
            if self._refusing:
                _set_rst_on_close(sock)
                sock.close()
                continue
            task = loop.create_task(self._handle(sock))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _handle(self, sock: socket.socket) -> None:
        self._pending.add(sock)
        target = self._target
        try:
            server = await asyncio.wait_for(
                asyncio.open_connection(*target), timeout=self._connect_timeout
            )
        except (OSError, TimeoutError):
            if sock in self._pending:
                self._pending.discard(sock)
                _set_rst_on_close(sock)
                sock.close()
            return
        if sock not in self._pending:  # reset or closed while connecting upstream
            _set_rst_on_close(server[1].get_extra_info("socket"))
            server[1].transport.abort()
            return
        self._pending.discard(sock)
        client = await asyncio.open_connection(sock=sock)
        conn = ProxiedConnection(
            self,
            next(self._ids),
            client,
            server,
            blackholed=self._blackholed,
            delay=self._delay,
        )
        with self._cond:
            self._live.append(conn)
            self._accepted += 1
            self._cond.notify_all()
        conn._start()
