"""The socket pump: the loop's readiness callbacks feed the paho adapter its socket's bytes.

paho tells the pump when its socket opens, closes and has bytes to write (the adapter wires
those hooks); the pump registers the socket with the loop and, on readiness, asks the adapter to
read or write. It knows sockets and the loop, nothing of MQTT.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

MAX_READS_PER_EVENT = 256
"""Packets read per readiness event before yielding to the loop, so one busy socket cannot
starve everything else on it."""


class PumpedLink(Protocol):
    """What the pump drives: the paho adapter's socket, reads and writes."""

    socket: Callable[[], Any]
    write: Callable[[], object]
    wants_write: Callable[[], bool]
    close_socket: Callable[[], None]

    @property
    def has_buffered_input(self) -> bool:
        """Bytes were read from the socket that are not parsed yet."""
        ...

    def read(self) -> bool:
        """Read and handle what the socket has; False when the link failed or ended."""
        ...


def has_pending_bytes(sock: Any) -> bool:
    """Whether ``sock`` holds bytes already taken off the wire that the loop's readiness will
    not signal again (a TLS or WebSocket stream's buffered ones). Bytes still in the kernel
    need no check: the loop's selector is level-triggered and calls back while there are."""
    pending = getattr(sock, "pending", None)
    return pending is not None and pending() > 0


@dataclass(eq=False)
class SocketPump:
    """Registers the adapter's socket with the loop and pumps its bytes on readiness."""

    loop: asyncio.AbstractEventLoop
    link: PumpedLink
    heard: Callable[[], None]
    """Called on every readable event (the keep-alive watchdog listens)."""
    after_close: Callable[[Any], None]
    """Called with each socket paho closed (the linger close listens)."""
    _written_before: Any = field(default=None, init=False, repr=False)
    """The socket written to at least once (later writes are flushed without watching it)."""

    # ------------------------------------------------ hooks paho calls (wired by the adapter)

    def opened(self, sock: Any) -> None:
        """paho took the socket: watch it for bytes."""
        self.loop.add_reader(sock, self._on_readable)

    def closed(self, sock: Any) -> None:
        """paho closed the socket: stop watching it."""
        self._written_before = None
        self._forget(sock)
        self.after_close(sock)

    def want_write(self, sock: Any) -> None:
        """paho queued bytes: write them once the callbacks at hand are done, so that packets
        queued together go out in one send(). The loop watches the socket for room only when
        it was full (watching it always costs two system calls per write) -- and for the first
        write on a socket (the CONNECT), so that what the peer already sent is read before it:
        a TLS 1.3 broker refuses a client certificate with an alert after the handshake, and
        a CONNECT written after the broker closed draws a reset that discards the unread
        alert, leaving a plain EOF where the refusal was."""
        if sock is self._written_before:
            self.loop.call_soon(self._flush, sock)
        else:
            self.loop.add_writer(sock, self._on_writable)

    def wrote_all(self, sock: Any) -> None:
        """paho's queue is empty: stop waiting for the socket to be writable."""
        with contextlib.suppress(ValueError, OSError):
            self.loop.remove_writer(sock)

    # ------------------------------------------------ the engine's

    def drop(self) -> None:
        """Shut the socket down and let paho observe the EOF (it reports the end)."""
        link = self.link
        sock: Any = link.socket()
        if sock is None:
            return
        self._forget(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        link.read()
        if link.socket() is not None:  # paho did not notice; close it ourselves
            link.close_socket()

    # ------------------------------------------------ readiness

    def _forget(self, sock: Any) -> None:
        for remove in (self.loop.remove_reader, self.loop.remove_writer):
            with contextlib.suppress(ValueError, OSError):
                remove(sock)

    def _on_readable(self) -> None:
        self.heard()
        link = self.link
        sock: Any = link.socket()
        for _ in range(MAX_READS_PER_EVENT):
            if sock is None or link.socket() is not sock:
                return
            if not link.read():
                return
            if not link.has_buffered_input and not has_pending_bytes(sock):
                return
        if link.socket() is sock and link.has_buffered_input:
            # The budget is spent with packets already read into our buffer: the socket may not
            # signal readable again (its bytes are with us), so come back by ourselves.
            self.loop.call_soon(self._on_readable)

    def _flush(self, sock: Any) -> None:
        link = self.link
        if link.socket() is not sock:
            return  # (the socket is gone: its packets went with it)
        link.write()
        if link.socket() is sock and link.wants_write():  # the socket is full
            self.loop.add_writer(sock, self._on_writable)

    def _on_writable(self) -> None:
        self._written_before = self.link.socket()
        self.link.write()
