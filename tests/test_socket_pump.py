"""The socket pump writes what paho queued once the callbacks at hand are done, and watches the
socket for room only while it is full (on a real socketpair)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from rxmqtt.engine._socket_pump import SocketPump


class _BufferedLink:
    """A link whose queued bytes go to a real non-blocking socket, as paho's writer does."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket | None = sock
        self.queued = bytearray()
        self.writes = 0

    def socket(self) -> Any:
        return self.sock

    def write(self) -> None:
        self.writes += 1
        assert self.sock is not None
        while self.queued:
            try:
                sent = self.sock.send(self.queued)
            except BlockingIOError:
                return
            del self.queued[:sent]

    def wants_write(self) -> bool:
        return bool(self.queued)

    def close_socket(self) -> None:
        pass

    @property
    def has_buffered_input(self) -> bool:
        return False

    def read(self) -> bool:
        return True


def _pumped(loop: asyncio.AbstractEventLoop) -> tuple[SocketPump, _BufferedLink, socket.socket]:
    """A pump over a link on a real socketpair; returns it, the link and the far end."""
    near, far = socket.socketpair()
    near.setblocking(False)
    link = _BufferedLink(near)
    pump = SocketPump(loop, link, heard=lambda: None, after_close=lambda _s: None)
    return pump, link, far


def _receive_all(far: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = far.recv(1 << 20)
        assert chunk, "the near end closed early"
        data += chunk
    return bytes(data)


async def test_packets_queued_together_go_out_in_one_write_without_watching_the_socket() -> None:
    """The first write on a socket waits for the loop's readiness (what the peer sent first is
    read first); after it, packets queued together go out in one write once the callbacks at
    hand are done, without the socket being watched."""
    loop = asyncio.get_running_loop()
    pump, link, far = _pumped(loop)
    near = link.socket()
    watched: list[object] = []
    real_add_writer = loop.add_writer
    loop.add_writer = lambda *args: (watched.append(args[0]), real_add_writer(*args))  # type: ignore[method-assign]
    try:
        link.queued += b"connect"
        pump.want_write(near)
        assert watched == [near], "the first write (the CONNECT) waits for readiness"
        assert await asyncio.wait_for(asyncio.to_thread(far.recv, 100), 5) == b"connect"
        loop.remove_writer(near)  # (paho unregisters once its queue is empty)
        watched.clear()
        link.queued += b"one"
        pump.want_write(near)
        link.queued += b"two"  # (queued in the same pass: paho asks only once)
        writes = link.writes
        await asyncio.sleep(0)
        assert link.writes == writes + 1
        assert far.recv(100) == b"onetwo"
        assert watched == [], "a socket with room is written without watching it"
    finally:
        loop.add_writer = real_add_writer  # type: ignore[method-assign]
        near.close()
        far.close()


async def test_a_full_socket_is_watched_until_it_takes_the_rest() -> None:
    loop = asyncio.get_running_loop()
    pump, link, far = _pumped(loop)
    near = link.socket()
    payload = bytes(range(256)) * 40_000  # ~10 MB: more than the socket buffers hold
    try:
        pump._written_before = near  # (past the first write)
        link.queued += payload
        pump.want_write(near)
        await asyncio.sleep(0)
        assert link.wants_write(), "the socket took only part of it"
        received = await asyncio.wait_for(asyncio.to_thread(_receive_all, far, len(payload)), 10)
        assert received == payload
        assert link.writes > 1, "the rest was written when the socket had room again"
    finally:
        loop.remove_writer(near)
        near.close()
        far.close()


async def test_a_flush_for_a_socket_that_is_gone_writes_nothing() -> None:
    pump, link, far = _pumped(asyncio.get_running_loop())
    near = link.socket()
    pump._written_before = near  # (past the first write)
    link.queued += b"late"
    pump.want_write(near)
    link.sock = None  # the link ended before the loop came round
    await asyncio.sleep(0)
    assert link.writes == 0
    near.close()
    far.close()
