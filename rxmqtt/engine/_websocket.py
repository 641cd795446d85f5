"""MQTT over WebSockets (RFC 6455): the HTTP upgrade, run on the loop, and a socket-like stream
that frames what paho writes and unframes what it reads.

paho has a WebSocket wrapper of its own, but its upgrade blocks on the socket (our sockets are
non-blocking, opened on the loop), and it answers a partly written frame with ``send() == 0``,
on which paho's writer drops the packet. So the engine brings its own: the upgrade is awaited
under ``connect_timeout`` like the TCP and TLS steps, and ``send()`` reports only payload bytes
actually written (or raises ``BlockingIOError``), continuing a frame where the last call stopped.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import ssl

from ..settings import WebSocketTransport
from ._nonblocking import recv_some, send_all

__all__ = ["WebSocketError", "WebSocketStream", "upgrade"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
"""RFC 6455 4.2.2: the key is hashed with this to prove the server understood the upgrade."""

_SUBPROTOCOL = "mqtt"
"""The WebSocket subprotocol MQTT registers (MQTT 5 6.0)."""

_MAX_RESPONSE_HEAD = 16384
_READ_SIZE = 65536

_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_FIN = 0x80
_MASKED = 0x80


class WebSocketError(ConnectionError):
    """The WebSocket upgrade failed, or the server broke the WebSocket protocol."""


async def upgrade(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket | ssl.SSLSocket,
    transport: WebSocketTransport,
    host: str,
) -> WebSocketStream:
    """Run the HTTP upgrade on the connected ``sock``; ``host`` is the ``Host`` header value."""
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    headers = {
        "Host": host,
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Protocol": _SUBPROTOCOL,
    }
    for name, value in transport.resolved_headers().items():
        for default in [d for d in headers if d.lower() == name.lower()]:
            del headers[default]  # a user's Host/Sec-WebSocket-Protocol replaces ours
        headers[name] = value
    lines = [f"GET {transport.path} HTTP/1.1", *(f"{n}: {v}" for n, v in headers.items())]
    await send_all(loop, sock, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    head, rest = await _read_head(loop, sock)
    offered = {p.strip() for p in _header(headers, "sec-websocket-protocol").split(",")}
    _check_response(head, key, offered, transport.path.partition("?")[0])
    return WebSocketStream(sock, rest)


async def _read_head(
    loop: asyncio.AbstractEventLoop, sock: socket.socket | ssl.SSLSocket
) -> tuple[bytes, bytes]:
    """The response head (through the blank line) and whatever followed it."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > _MAX_RESPONSE_HEAD:
            raise WebSocketError(
                f"WebSocket upgrade: the response headers exceed {_MAX_RESPONSE_HEAD} bytes"
            )
        chunk = await recv_some(loop, sock, 4096)
        if not chunk:
            raise WebSocketError("WebSocket upgrade: the server closed the connection")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _header(headers: dict[str, str], name: str) -> str:
    return ", ".join(v for n, v in headers.items() if n.lower() == name)


def _check_response(head: bytes, key: str, offered: set[str], path: str) -> None:
    """A ``101 Switching Protocols`` that accepts this key, or ``WebSocketError`` saying why."""
    status, *lines = head.decode("latin-1").split("\r\n")
    parts = status.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise WebSocketError(f"WebSocket upgrade: not an HTTP response: {status[:80]!r}")
    if parts[1] != "101":
        raise WebSocketError(
            f"WebSocket upgrade of {path!r} refused by the server: {status[:120]!r}"
        )
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        lower = name.strip().lower()
        headers[lower] = f"{headers[lower]}, {value.strip()}" if lower in headers else value.strip()
    if headers.get("upgrade", "").lower() != "websocket":
        raise WebSocketError("WebSocket upgrade: the response has no 'Upgrade: websocket'")
    if "upgrade" not in {t.strip().lower() for t in headers.get("connection", "").split(",")}:
        raise WebSocketError("WebSocket upgrade: the response has no 'Connection: Upgrade'")
    expected = base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode()
    if headers.get("sec-websocket-accept") != expected:
        raise WebSocketError("WebSocket upgrade: Sec-WebSocket-Accept does not match the key")
    chosen = headers.get("sec-websocket-protocol")
    if chosen is not None and chosen not in offered:
        raise WebSocketError(f"WebSocket upgrade: the server chose subprotocol {chosen!r}")


def _mask(data: bytes | bytearray | memoryview, key: bytes) -> bytes:
    """XOR ``data`` with the repeated 4-byte ``key`` (done on one big integer, not per byte)."""
    size = len(data)
    if not size:
        return b""
    pad = (key * (size // 4 + 1))[:size]
    masked = int.from_bytes(data, "big") ^ int.from_bytes(pad, "big")
    return masked.to_bytes(size, "big")


def _frame_header(opcode: int, size: int, key: bytes) -> bytes:
    """A final, masked frame's header for ``size`` payload bytes (a client must mask)."""
    if size < 126:
        length = bytes((_MASKED | size,))
    elif size < 1 << 16:
        length = bytes((_MASKED | 126,)) + size.to_bytes(2, "big")
    else:
        length = bytes((_MASKED | 127,)) + size.to_bytes(8, "big")
    return bytes((_FIN | opcode,)) + length + key


def _control_frame(opcode: int, payload: bytes) -> bytes:
    key = os.urandom(4)
    return _frame_header(opcode, len(payload), key) + _mask(payload, key)


class WebSocketStream:
    """The socket paho uses over a WebSocket: MQTT bytes in binary frames [MQTT-6.0.0-1].

    ``recv()`` returns payload bytes (raising ``BlockingIOError`` like a non-blocking socket
    when none are there) and answers PING; a CLOSE from the server ends the stream with a
    ``WebSocketError`` naming its status. ``send()`` writes each call's data as one frame and
    returns how many payload bytes went out, never 0: a frame cut short by a full socket is
    continued by the next call, which paho makes with the same bytes.
    """

    def __init__(self, sock: socket.socket | ssl.SSLSocket, buffered: bytes = b"") -> None:
        self._sock = sock
        self._raw = bytearray(buffered)  # received, not yet decoded
        self._payload = bytearray()  # decoded, not yet read by paho
        self._incoming_left = 0  # payload bytes of the current data frame still to arrive
        self._closed_by_server: str | None = None
        self._pending = b""  # framing bytes (headers, control frames) not yet written
        self._outgoing_left = 0  # payload bytes of the current outgoing frame not yet written
        self._key = b""
        self._key_offset = 0
        self._control = bytearray()  # control frames waiting for the current frame to end

    # -- reading ---------------------------------------------------------------------------

    def recv(self, bufsize: int) -> bytes:
        """Up to ``bufsize`` payload bytes; ``b""`` at the end of the stream."""
        self._decode()
        while not self._payload and self._closed_by_server is None:
            data = self._sock.recv(_READ_SIZE)  # BlockingIOError when there is nothing
            if not data:
                break
            self._raw += data
            self._decode()
        self._flush_control()
        if not self._payload:
            if self._closed_by_server is not None:
                raise WebSocketError(f"the server closed the WebSocket ({self._closed_by_server})")
            return b""
        chunk = bytes(self._payload[:bufsize])
        del self._payload[:bufsize]
        return chunk

    def pending(self) -> int:
        """Payload bytes readable without waiting for the socket (like ``SSLSocket.pending``)."""
        inner = self._sock.pending() if isinstance(self._sock, ssl.SSLSocket) else 0
        return len(self._payload) + inner

    def _decode(self) -> None:
        raw = self._raw
        while raw and self._closed_by_server is None:
            if self._incoming_left:
                take = min(len(raw), self._incoming_left)
                self._payload += raw[:take]
                del raw[:take]
                self._incoming_left -= take
                continue
            parsed = self._frame_start(raw)
            if parsed is None:
                return  # the header is not all there yet
            opcode, size, start = parsed
            if opcode in (_BINARY, _CONTINUATION):
                del raw[:start]
                self._incoming_left = size
            elif start + size > len(raw):
                return  # a control frame is taken whole
            else:
                payload = bytes(raw[start : start + size])
                del raw[: start + size]
                self._control_received(opcode, payload)

    def _frame_start(self, raw: bytearray) -> tuple[int, int, int] | None:
        """(opcode, payload size, header size) of the frame at the start of ``raw``."""
        if len(raw) < 2:
            return None
        first, second = raw[0], raw[1]
        opcode = first & 0x0F
        if first & 0x70:
            raise WebSocketError("WebSocket protocol error: reserved bits set (no extension)")
        if second & _MASKED:
            raise WebSocketError("WebSocket protocol error: the server masked a frame")
        if opcode == _TEXT:
            raise WebSocketError("WebSocket: the server sent a text frame; MQTT uses binary frames")
        if opcode not in (_BINARY, _CONTINUATION, _CLOSE, _PING, _PONG):
            raise WebSocketError(f"WebSocket protocol error: unknown opcode 0x{opcode:X}")
        size = second & 0x7F
        start = 2
        if size >= 126:
            if opcode >= _CLOSE:
                raise WebSocketError("WebSocket protocol error: a control frame over 125 bytes")
            width = 2 if size == 126 else 8
            if len(raw) < 2 + width:
                return None
            size = int.from_bytes(raw[2 : 2 + width], "big")
            start += width
        return opcode, size, start

    def _control_received(self, opcode: int, payload: bytes) -> None:
        if opcode == _PING:
            self._control += _control_frame(_PONG, payload)
        elif opcode == _CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            reason = payload[2:].decode("utf-8", "replace")
            self._closed_by_server = " ".join(
                part for part in (str(code) if code else "no status", reason) if part
            )
            self._control += _control_frame(_CLOSE, payload[:2])

    def _flush_control(self) -> None:
        """Send queued PONG/CLOSE frames now if no data frame is half written (best effort)."""
        if not self._control or self._outgoing_left or self._pending:
            return
        self._pending, self._control = bytes(self._control), bytearray()
        try:
            sent = self._sock.send(self._pending)
        except OSError:
            return  # (BlockingIOError, SSLWant*): the next send() writes them first
        self._pending = self._pending[sent:]

    # -- writing ---------------------------------------------------------------------------

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Write ``data`` as (the rest of) one binary frame; returns payload bytes written."""
        if not data:
            return 0
        if not self._outgoing_left:
            self._key = os.urandom(4)
            self._key_offset = 0
            self._outgoing_left = len(data)
            self._pending += bytes(self._control) + _frame_header(_BINARY, len(data), self._key)
            self._control.clear()
        offset = self._key_offset % 4
        take = memoryview(data)[: self._outgoing_left]
        chunk = self._pending + _mask(take, self._key[offset:] + self._key[:offset])
        sent = self._sock.send(chunk)  # BlockingIOError/SSLWant*: nothing written, state kept
        written = sent - len(self._pending)
        if written <= 0:
            self._pending = self._pending[sent:]
            raise BlockingIOError("the socket is full (WebSocket framing bytes still owed)")
        self._pending = b""
        self._outgoing_left -= written
        self._key_offset += written
        return written

    # -- the socket itself -----------------------------------------------------------------

    def fileno(self) -> int:
        return self._sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    def close(self) -> None:
        self._sock.close()
