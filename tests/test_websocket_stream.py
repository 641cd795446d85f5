"""The engine's WebSocket layer on a real socket pair: what paho writes leaves as masked binary
frames (continued, never lost, when the socket fills up), what the server frames arrives as the
byte stream, PING is answered and CLOSE, text frames and masked frames end the stream; the
upgrade checks the server's answer and sends what it should."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import os
import re
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rxmqtt import ConnectionSettings, Endpoint, TlsSettings, WebSocketTransport
from rxmqtt.engine import _sockets
from rxmqtt.engine._websocket import WebSocketError, WebSocketStream, upgrade


@contextlib.contextmanager
def pair(send_buffer: int | None = None) -> Iterator[tuple[WebSocketStream, socket.socket]]:
    """(the client's stream, the server's end), both non-blocking."""
    client, server = socket.socketpair()
    if send_buffer is not None:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, send_buffer)
    client.setblocking(False)
    server.setblocking(False)
    try:
        yield WebSocketStream(client), server
    finally:
        client.close()
        server.close()


def server_frame(opcode: int, payload: bytes, *, fin: bool = True, masked: bool = False) -> bytes:
    """A frame as a server writes it (unmasked unless ``masked``)."""
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head = bytes((mask_bit | size,))
    elif size < 65536:
        head = bytes((mask_bit | 126,)) + size.to_bytes(2, "big")
    else:
        head = bytes((mask_bit | 127,)) + size.to_bytes(8, "big")
    first = (0x80 if fin else 0) | opcode
    return bytes((first,)) + head + (b"\0\0\0\0" if masked else b"") + payload


def read_client_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Decode what the client wrote: (opcode, unmasked payload) per frame; every frame must be
    final and masked (RFC 6455 5.1: a client masks all frames)."""
    frames: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        first, second = data[pos], data[pos + 1]
        assert first & 0x80, "a final frame"
        assert second & 0x80, "client frames are masked"
        size, pos = second & 0x7F, pos + 2
        if size >= 126:
            width = 2 if size == 126 else 8
            size, pos = int.from_bytes(data[pos : pos + width], "big"), pos + width
        key, pos = data[pos : pos + 4], pos + 4
        body = data[pos : pos + size]
        assert len(body) == size, "a whole frame"
        frames.append((first & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(body))))
        pos += size
    return frames


def drain(sock: socket.socket) -> bytes:
    out = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := sock.recv(1 << 20):
            out += chunk
    return out


def write_all(stream: WebSocketStream, server: socket.socket, data: bytes) -> bytes:
    """Send ``data`` through ``stream``, draining the server's end whenever the socket is full
    (each send must report progress, never 0); returns what the server received meanwhile."""
    wire = b""
    sent = 0
    while sent < len(data):
        try:
            written = stream.send(data[sent:])
        except BlockingIOError:
            wire += drain(server)
            continue
        assert written > 0
        sent += written
    return wire


def read_all(stream: WebSocketStream) -> bytes:
    out = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := stream.recv(65536):
            out += chunk
    return out


# ---------------------------------------------------------------- reading


@settings(max_examples=60, deadline=None)
@given(
    chunks=st.lists(st.binary(min_size=1, max_size=70_000), min_size=1, max_size=5),
    cut=st.integers(min_value=1, max_value=9000),
)
def test_server_frames_arrive_as_the_byte_stream_however_they_are_cut(
    chunks: list[bytes], cut: int
) -> None:
    wire = b"".join(server_frame(0x2, c) for c in chunks)
    with pair() as (stream, server):
        got = b""
        for start in range(0, len(wire), cut):
            server.sendall(wire[start : start + cut])
            got += read_all(stream)
        assert got == b"".join(chunks)


def test_a_fragmented_message_is_joined_and_a_ping_in_between_is_answered() -> None:
    with pair() as (stream, server):
        server.sendall(
            server_frame(0x2, b"abc", fin=False)
            + server_frame(0x9, b"are you there")
            + server_frame(0x0, b"def")
        )
        assert read_all(stream) == b"abcdef"
        assert read_client_frames(drain(server)) == [(0xA, b"are you there")]


def test_a_close_frame_ends_the_stream_naming_its_status_after_the_data_before_it() -> None:
    with pair() as (stream, server):
        server.sendall(server_frame(0x2, b"last") + server_frame(0x8, b"\x03\xe9going away"))
        assert stream.recv(100) == b"last"
        with pytest.raises(WebSocketError, match="1001 going away"):
            stream.recv(100)
        assert read_client_frames(drain(server)) == [(0x8, b"\x03\xe9")]  # the close, echoed


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        (server_frame(0x1, b"{}"), "text frame"),
        (server_frame(0x2, b"x", masked=True), "masked"),
        (bytes((0xC2, 1)) + b"x", "reserved bits"),
        (server_frame(0x3, b""), "unknown opcode"),
    ],
)
def test_a_frame_mqtt_cannot_carry_ends_the_stream(frame: bytes, words: str) -> None:
    with pair() as (stream, server):
        server.sendall(frame)
        with pytest.raises(WebSocketError, match=words):
            stream.recv(100)


def test_eof_reads_as_an_empty_read_and_nothing_buffered_reads_as_would_block() -> None:
    with pair() as (stream, server):
        with pytest.raises(BlockingIOError):
            stream.recv(10)
        server.sendall(server_frame(0x2, b"abc")[:3])  # a header and one byte
        assert stream.recv(10) == b"a"
        with pytest.raises(BlockingIOError):
            stream.recv(10)
        server.shutdown(socket.SHUT_WR)
        assert stream.recv(10) == b""


def test_pending_counts_what_was_decoded_but_not_read() -> None:
    with pair() as (stream, server):
        server.sendall(server_frame(0x2, b"0123456789"))
        assert stream.recv(4) == b"0123"
        assert stream.pending() == 6
        assert stream.recv(100) == b"456789"
        assert stream.pending() == 0


# ---------------------------------------------------------------- writing


def test_each_send_is_one_masked_binary_frame_of_every_length_class() -> None:
    sizes = (2, 125, 126, 65535, 65536)  # the 7-bit, 16-bit and 64-bit length encodings
    packets = [os.urandom(size) for size in sizes]
    with pair() as (stream, server):
        wire = b"".join(write_all(stream, server, data) for data in packets) + drain(server)
    assert read_client_frames(wire) == [(0x2, data) for data in packets]


class Trickle:
    """A real socket end whose ``send`` takes at most the next of ``limits`` bytes, as a full
    socket does (down to a part of a frame header); a limit of 0 is a full socket."""

    def __init__(self, sock: socket.socket, limits: list[int]) -> None:
        self._sock = sock
        self._limits = itertools.cycle(limits)

    def send(self, data: bytes) -> int:
        limit = next(self._limits)
        if limit == 0:
            raise BlockingIOError("full")
        return self._sock.send(data[:limit])

    def recv(self, size: int) -> bytes:
        return self._sock.recv(size)


@settings(max_examples=80, deadline=None)
@given(
    packets=st.lists(st.binary(min_size=1, max_size=70_000), min_size=1, max_size=6),
    limits=st.lists(st.integers(min_value=0, max_value=20_000), min_size=1, max_size=12).filter(
        any
    ),
)
def test_a_full_socket_never_loses_a_byte_and_never_reports_zero(
    packets: list[bytes], limits: list[int]
) -> None:
    """paho drops a packet whose send() returns 0: a frame cut short anywhere, its header
    included, is continued by the next call."""
    client_end, server_end = socket.socketpair()
    client_end.setblocking(False)
    server_end.setblocking(False)
    try:
        stream = WebSocketStream(Trickle(client_end, limits))  # type: ignore[arg-type]
        wire = b"".join(write_all(stream, server_end, data) for data in packets)
        wire += drain(server_end)
    finally:
        client_end.close()
        server_end.close()
    frames = read_client_frames(wire)
    assert all(opcode == 0x2 for opcode, _ in frames)
    assert b"".join(body for _, body in frames) == b"".join(packets)


def test_a_pong_owed_mid_frame_goes_out_after_that_frame() -> None:
    with pair(send_buffer=4096) as (stream, server):
        data = os.urandom(200_000)
        sent = stream.send(data)  # the socket fills: the frame is cut short
        assert 0 < sent < len(data)
        server.sendall(server_frame(0x9, b"p"))
        with pytest.raises(BlockingIOError):
            stream.recv(10)  # answers the PING only once the frame is whole
        wire = write_all(stream, server, data[sent:]) + drain(server)
        assert stream.send(b"next") == 4
        wire += drain(server)
    assert read_client_frames(wire) == [(0x2, data), (0xA, b"p"), (0x2, b"next")]


# ---------------------------------------------------------------- the upgrade


def accept_for(request: bytes) -> str:
    key = re.search(rb"Sec-WebSocket-Key: (\S+)", request)
    assert key is not None
    digest = hashlib.sha1(key.group(1) + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
    return base64.b64encode(digest).decode()


def switching(accept: str, *extra: str) -> bytes:
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


Answer = Callable[[bytes], bytes]


async def upgrade_against(answer: Answer, transport: WebSocketTransport | None = None) -> bytes:
    """Run the upgrade against a server answering ``answer(request)``; returns what the stream
    reads first (the server also sends one binary frame, ``b"after"``, right behind)."""
    loop = asyncio.get_running_loop()
    client, server = socket.socketpair()
    client.setblocking(False)
    server.setblocking(False)
    try:

        async def serve() -> None:
            request = b""
            while b"\r\n\r\n" not in request:
                request += await loop.sock_recv(server, 4096)
            await loop.sock_sendall(server, answer(request) + server_frame(0x2, b"after"))

        served = asyncio.ensure_future(serve())
        stream = await upgrade(loop, client, transport or WebSocketTransport(), "broker:9001")
        await served
        return stream.recv(100)
    finally:
        client.close()
        server.close()


async def test_the_upgrade_checks_the_accept_key_and_keeps_what_followed() -> None:
    assert await upgrade_against(lambda request: switching(accept_for(request))) == b"after"
    chosen = await upgrade_against(
        lambda request: switching(accept_for(request), "Sec-WebSocket-Protocol: mqtt")
    )
    assert chosen == b"after"


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (lambda request: switching("d3Jvbmc="), "Sec-WebSocket-Accept does not match"),
        (lambda request: b"HTTP/1.1 404 Not Found\r\n\r\n", "refused by the server: 'HTTP/1.1 404"),
        (lambda request: b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP response"),
        (
            lambda request: switching(accept_for(request)).replace(b"Upgrade: websocket", b"X: y"),
            "no 'Upgrade: websocket'",
        ),
        (
            lambda request: switching(accept_for(request), "Sec-WebSocket-Protocol: wamp"),
            "chose subprotocol 'wamp'",
        ),
    ],
)
async def test_a_bad_upgrade_answer_is_a_named_websocket_error(answer: Answer, words: str) -> None:
    with pytest.raises(WebSocketError, match=re.escape(words)):
        await upgrade_against(answer)


async def test_the_request_carries_host_path_subprotocol_and_the_extra_headers() -> None:
    seen: list[bytes] = []

    def answer(request: bytes) -> bytes:
        seen.append(request)
        return switching(accept_for(request))

    transport = WebSocketTransport(path="/ws?x=1", headers={"Authorization": "Bearer t"})
    await upgrade_against(answer, transport)
    request = seen[0].decode()
    assert request.startswith("GET /ws?x=1 HTTP/1.1\r\n")
    for line in (
        "Host: broker:9001",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: mqtt",
        "Authorization: Bearer t",
    ):
        assert f"\r\n{line}\r\n" in request


@pytest.mark.parametrize(
    ("kwargs", "host"),
    [
        ({"host": "broker", "port": 9001}, "broker:9001"),
        ({"host": "::1", "port": 9001}, "[::1]:9001"),
        ({"host": "broker", "port": 80}, "broker"),
        ({"host": "broker", "port": 443, "tls": TlsSettings()}, "broker"),
        ({"host": "broker", "port": 80, "tls": TlsSettings()}, "broker:80"),
        (
            {"host": "10.0.0.7", "port": 443, "tls": TlsSettings(server_hostname="b.example")},
            "b.example",
        ),
    ],
)
def test_the_host_header_names_the_server_and_a_non_default_port(
    kwargs: dict[str, Any], host: str
) -> None:
    settings = ConnectionSettings(transport="websockets", **kwargs)
    endpoint = Endpoint(settings.host, settings.port or 0)
    assert _sockets._host_header(settings, endpoint) == host
