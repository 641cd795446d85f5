"""One proxied TCP connection: two directions copied by the proxy's loop, each of which can pass,
black-hole, delay, be reset or have bytes injected."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rxmqtt.testing.proxy._fault_proxy import FaultProxy

_READ_SIZE = 65536
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
