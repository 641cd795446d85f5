"""Helpers more than one test module needs (import them; pytest does not collect this file)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any, Protocol


class _Logging(Protocol):
    def log_text(self) -> str: ...


async def wait_log(broker: _Logging, text: str, timeout: float = 5.0) -> None:
    """Wait until ``text`` appears in the broker's log (what it received, from whom)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while text not in broker.log_text():
        if loop.time() > deadline:
            raise TimeoutError(f"broker log never said {text!r}")
        await asyncio.sleep(0.02)


@contextlib.contextmanager
def loop_exceptions() -> Iterator[list[dict[str, Any]]]:
    """Record whatever reaches the running loop's exception handler (must stay empty)."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        yield seen
    finally:
        loop.set_exception_handler(previous)


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes from a blocking socket; ``EOFError`` if it closes first."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data
