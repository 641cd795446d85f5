"""The proxy's listener, its loop thread and the proxy-wide fault modes (pass, black-hole,
delay, reset, refuse); each accepted connection becomes a :class:`ProxiedConnection`."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Self, TypeVar

from rxmqtt._scoped import StartedOnEnter, once_started
from rxmqtt.testing.broker import LOOPBACK, free_port
from rxmqtt.testing.proxy._connection import ProxiedConnection, _set_rst_on_close

_T = TypeVar("_T")
_CALL_TIMEOUT = 10.0


class FaultProxy(StartedOnEnter):
    """A TCP proxy on 127.0.0.1 in front of ``(target_host, target_port)`` with fault modes.

    Proxy-wide modes apply to every current connection and to new ones: :meth:`pass_through`,
    :meth:`blackhole`, :meth:`delay`. :meth:`reset` RSTs the current connections; :meth:`refuse`
    makes new connection attempts fail (ECONNREFUSED, accept-then-RST with ``reset=True``, or
    no answer at all with ``silently=True``) until :meth:`accept`. Per-connection controls live
    on :attr:`connections`. ``listen_host`` may be ``::1``; ``listen_port`` fixes the port (e.g.
    the port a broker has on the other loopback address, for a name with both).
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        listen_host: str = LOOPBACK,
        *,
        scheme: str = "mqtt",
        connect_timeout: float = 5.0,
        listen_port: int | None = None,
    ) -> None:
        self._target = (target_host, int(target_port))
        self._listen_host = listen_host
        self._listen_port = listen_port
        self._family = socket.AF_INET6 if ":" in listen_host else socket.AF_INET
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
        self._stalling: socket.socket | None = None  # fills the accept queue (refuse(silently))
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
        """Listening address (``127.0.0.1`` unless ``listen_host`` said ``::1``)."""
        return self._listen_host

    @property
    def port(self) -> int:
        """Listening port."""
        return once_started(self._port, "the proxy has not been started yet; call start()")

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<port>`` (scheme from the constructor, e.g. ``mqtts``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self._scheme}://{host}:{self.port}"

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

    def refuse(self, *, reset: bool = False, silently: bool = False) -> None:
        """Refuse new connections: ECONNREFUSED (listener shut), accept-then-RST if ``reset``,
        or with ``silently`` no answer at all: the TCP handshake never completes (the accept
        queue is kept full, so the kernel drops the SYNs), as with a host behind a firewall
        that drops packets, and a client's connect() hangs until its own timeout.

        Existing connections are untouched; combine with :meth:`reset` to cut everything.
        """
        if reset and silently:
            raise ValueError("refuse: reset and silently exclude each other")
        if silently:
            self._call(self._set_refusing(False, False))
            self._call(self._stall())
        else:
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
        for _ in range(1 if self._listen_port is not None else 20):
            port = self._listen_port or free_port(self._listen_host)
            sock = socket.socket(self._family, socket.SOCK_STREAM)
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
        if self._stalling is not None:
            self._stalling.close()
            self._stalling = None
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

    async def _stall(self) -> None:
        """Stop accepting and fill the accept queue (backlog 0 holds one connection): Linux
        then drops new SYNs instead of answering them."""
        listener = self._listener
        if listener is None:
            raise RuntimeError("the proxy is not listening")
        loop = asyncio.get_running_loop()
        loop.remove_reader(listener)
        listener.listen(0)
        filler = socket.socket(self._family, socket.SOCK_STREAM)
        filler.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(filler, (self.host, self.port)), 1.0)
        except BaseException:
            filler.close()
            listener.listen(128)
            loop.add_reader(listener, self._on_acceptable)
            raise
        self._stalling = filler
        self._refusing = True

    def _unstall(self, listener: socket.socket) -> None:
        """Undo :meth:`_stall`: drop the queued filler, listen and accept again."""
        filler, self._stalling = self._stalling, None
        if filler is None:
            return
        listener.listen(128)
        with contextlib.suppress(OSError):
            while True:  # only the filler waits in the queue: nothing else got in
                queued, _ = listener.accept()
                queued.close()
        filler.close()
        asyncio.get_running_loop().add_reader(listener, self._on_acceptable)
        self._refusing = False

    async def _set_refusing(self, refusing: bool, with_reset: bool) -> None:
        listener = self._listener
        if listener is None:
            raise RuntimeError("the proxy is not listening")
        self._unstall(listener)
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
        sock = socket.socket(self._family, socket.SOCK_STREAM)
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
