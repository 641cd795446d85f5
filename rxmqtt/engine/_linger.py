"""The linger close: after our DISCONNECT, close the socket without a reset and wait (briefly)
for the broker to close its side, so it reads the DISCONNECT and discards the Will."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any

LINGER_SECONDS = 1.0
"""How long a graceful close waits for the broker to close its side after our DISCONNECT."""


class Linger:
    """Turns the socket paho closes after writing a DISCONNECT into a lingering close.

    Used as ``with linger.disconnecting(): <write DISCONNECT>``: a socket closed inside the
    block (``socket_closed``) lingers; any other close (a lost link) is left as it is.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float = LINGER_SECONDS) -> None:
        self._loop = loop
        self._seconds = seconds
        self._armed = False
        self._done: asyncio.Future[None] | None = None

    @contextlib.contextmanager
    def disconnecting(self) -> Iterator[None]:
        """The block writes our DISCONNECT; the socket closed meanwhile lingers."""
        self._armed = True
        try:
            yield
        finally:
            self._armed = False

    def socket_closed(self, sock: Any) -> None:
        """paho closed ``sock``; linger on it if a DISCONNECT was just written."""
        if self._armed:
            self._done = close_after_peer(self._loop, sock, self._seconds)

    async def wait(self, timeout: float = LINGER_SECONDS) -> None:
        """Wait until the lingering close has finished (at most ``timeout``)."""
        if self._done is not None and not self._done.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._done), timeout)


def close_after_peer(
    loop: asyncio.AbstractEventLoop, sock: Any, seconds: float
) -> asyncio.Future[None] | None:
    """Close after DISCONNECT without a reset: closing a socket with unread bytes makes the
    kernel send RST, and a broker that sees RST may discard our DISCONNECT (then publish the
    Will) and our last acks. So: keep a duplicate of the descriptor, send FIN, read and discard
    until the broker closes too (or ``seconds`` pass), then close. The future is done then;
    None when the socket was already unusable."""
    try:
        twin = socket.socket(fileno=os.dup(sock.fileno()))
        twin.setblocking(False)
        twin.shutdown(socket.SHUT_WR)
    except OSError:
        return None
    done: asyncio.Future[None] = loop.create_future()

    def finish() -> None:
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(twin)
        twin.close()
        timer.cancel()
        if not done.done():
            done.set_result(None)

    def drain() -> None:
        try:
            while twin.recv(65536):
                pass
        except BlockingIOError:
            return
        except OSError:
            pass
        finish()  # EOF (or an error): the broker has closed its side

    loop.add_reader(twin, drain)
    timer = loop.call_later(seconds, finish)
    return done
