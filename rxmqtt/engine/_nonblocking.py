"""Waiting on a non-blocking (possibly TLS) socket from the loop: readiness, send all, read some.

asyncio's ``sock_*`` helpers refuse ``ssl.SSLSocket``; these work for both, retrying on the
``SSLWantRead``/``SSLWantWrite`` a TLS socket raises when it needs the other direction.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

__all__ = ["recv_some", "send_all", "wait_fd"]


async def wait_fd(loop: asyncio.AbstractEventLoop, sock: Any, *, readable: bool) -> None:
    """Wait until ``sock`` is readable (or writable)."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if readable:
        loop.add_reader(sock, wake)
    else:
        loop.add_writer(sock, wake)
    try:
        await ready
    finally:
        if readable:
            loop.remove_reader(sock)
        else:
            loop.remove_writer(sock)


async def send_all(
    loop: asyncio.AbstractEventLoop, sock: socket.socket | ssl.SSLSocket, data: bytes
) -> None:
    """Write all of ``data``."""
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
        except (BlockingIOError, ssl.SSLWantWriteError):
            await wait_fd(loop, sock, readable=False)
            continue
        except ssl.SSLWantReadError:
            await wait_fd(loop, sock, readable=True)
            continue
        view = view[sent:]


async def recv_some(
    loop: asyncio.AbstractEventLoop, sock: socket.socket | ssl.SSLSocket, size: int
) -> bytes:
    """Read up to ``size`` bytes once some are there (``b""`` at end of stream)."""
    while True:
        try:
            return sock.recv(size)
        except (BlockingIOError, ssl.SSLWantReadError):
            await wait_fd(loop, sock, readable=True)
        except ssl.SSLWantWriteError:
            await wait_fd(loop, sock, readable=False)
