"""A scripted MQTT 5 server for tests: each accepted connection is handed to a coroutine that
reads the client's packets and answers with raw bytes (or withholds the answer), so a test can
play a broker edge case no real broker shows on demand (a refusing DISCONNECT, a lost session, a
redirection, a SUBACK that never comes) and see exactly what the client sends."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ._raw import mqtt_str, packet, read_packet, varint, varint_at

CONNECT, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 3, 4, 5, 6, 7
SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT, AUTH = 8, 10, 12, 14, 15
"""Control packet types (the high nibble of a packet's first byte)."""

Script = Callable[["PeerLink"], Awaitable[None]]
"""What the peer does with one connection (its CONNECT already read). A script that returns
closes the connection."""


# ----------------------------------------------------------------------------- encoders


def properties(*encoded: bytes) -> bytes:
    """A property block: its length, then the properties (see the encoders below)."""
    body = b"".join(encoded)
    return varint(len(body)) + body


def message_expiry(seconds: int) -> bytes:
    """Property 0x02 Message Expiry Interval."""
    return b"\x02" + seconds.to_bytes(4, "big")


def server_reference(text: str) -> bytes:
    """Property 0x1C Server Reference."""
    return b"\x1c" + mqtt_str(text)


def maximum_qos(value: int) -> bytes:
    """Property 0x24 Maximum QoS."""
    return bytes((0x24, value))


def retain_available(value: int) -> bytes:
    """Property 0x25 Retain Available."""
    return bytes((0x25, value))


def auth_method(name: str) -> bytes:
    """Property 0x15 Authentication Method."""
    return b"\x15" + mqtt_str(name)


def auth_data(data: bytes) -> bytes:
    """Property 0x16 Authentication Data."""
    return b"\x16" + mqtt_str(data)


def reason_string(text: str) -> bytes:
    """Property 0x1F Reason String."""
    return b"\x1f" + mqtt_str(text)


def auth(code: int, props: bytes = b"\x00") -> bytes:
    """AUTH from the server with ``code`` (0x00 Success, 0x18 Continue authentication)."""
    return packet(0xF0, bytes((code,)) + props)


def connack(code: int = 0, *, session_present: bool = False, props: bytes = b"\x00") -> bytes:
    """CONNACK with ``code``; ``props`` is a whole property block (``properties(...)``)."""
    return packet(0x20, bytes((int(session_present), code)) + props)


def disconnect(code: int, props: bytes = b"\x00") -> bytes:
    """DISCONNECT from the server with ``code``."""
    return packet(0xE0, bytes((code,)) + props)


def ack(kind: int, packet_id: int, code: int = 0) -> bytes:
    """PUBACK / PUBREC / PUBCOMP (``kind``) for ``packet_id`` with ``code``."""
    return packet(kind << 4, packet_id.to_bytes(2, "big") + bytes((code, 0)))


def publish(
    topic: str | bytes,
    payload: bytes,
    *,
    qos: int = 0,
    packet_id: int = 1,
    props: bytes = b"\x00",
) -> bytes:
    """PUBLISH to the client (``packet_id`` only goes out with QoS 1 or 2); ``topic`` may be
    bytes that are not UTF-8, as a hostile server sends."""
    packet_id_bytes = packet_id.to_bytes(2, "big") if qos else b""
    return packet(0x30 | qos << 1, mqtt_str(topic) + packet_id_bytes + props + payload)


@dataclass(frozen=True)
class Request:
    """A SUBSCRIBE (filters with their QoS) or UNSUBSCRIBE (QoS 0) the client sent."""

    kind: int
    packet_id: int
    filters: tuple[tuple[str, int], ...]


def reply(request: Request, codes: bytes | None = None) -> bytes:
    """SUBACK granting each requested QoS, or UNSUBACK with Success; or with ``codes``."""
    header = 0x90 if request.kind == SUBSCRIBE else 0xB0
    if codes is None:
        codes = bytes(qos for _, qos in request.filters)
    return packet(header, request.packet_id.to_bytes(2, "big") + b"\x00" + codes)


# ----------------------------------------------------------------------------- decoders


def _body(raw: bytes) -> bytes:
    """A whole packet's variable header and payload (after the header byte and the length)."""
    _, start = varint_at(raw, 1)
    return raw[start:]


@dataclass(frozen=True)
class Publish:
    """A PUBLISH the client sent."""

    topic: str
    payload: bytes
    qos: int
    packet_id: int
    dup: bool
    retain: bool


def parse_publish(raw: bytes) -> Publish:
    """Decode a whole PUBLISH packet."""
    header, body = raw[0], _body(raw)
    qos = (header >> 1) & 3
    size = int.from_bytes(body[:2], "big")
    topic = body[2 : 2 + size].decode()
    cursor = 2 + size
    packet_id = 0
    if qos:
        packet_id = int.from_bytes(body[cursor : cursor + 2], "big")
        cursor += 2
    prop_length, cursor = varint_at(body, cursor)
    payload = body[cursor + prop_length :]
    return Publish(topic, payload, qos, packet_id, bool(header & 8), bool(header & 1))


def parse_request(raw: bytes) -> Request:
    """Decode a whole SUBSCRIBE or UNSUBSCRIBE packet."""
    kind, body = raw[0] >> 4, _body(raw)
    prop_length, cursor = varint_at(body, 2)
    cursor += prop_length
    filters = []
    while cursor < len(body):
        size = int.from_bytes(body[cursor : cursor + 2], "big")
        name = body[cursor + 2 : cursor + 2 + size].decode()
        cursor += 2 + size
        qos = 0
        if kind == SUBSCRIBE:
            qos = body[cursor] & 0x03
            cursor += 1
        filters.append((name, qos))
    return Request(kind, packet_id_of(raw), tuple(filters))


_FIXED_SIZE_PROPERTIES = {0x01: 1, 0x02: 4, 0x11: 4, 0x13: 2, 0x17: 1, 0x18: 4, 0x19: 1}
_FIXED_SIZE_PROPERTIES |= {0x21: 2, 0x22: 2, 0x23: 2, 0x24: 1, 0x25: 1, 0x27: 4, 0x28: 1}
_FIXED_SIZE_PROPERTIES |= {0x29: 1, 0x2A: 1}
"""Byte sizes of the integer properties (MQTT 5 2.2.2.2); the rest are strings or binary
data with a two-byte length (0x26 User Property: two of them, 0x0B: a Variable Byte Integer)."""


def parse_properties(data: bytes, pos: int) -> tuple[dict[int, list[bytes]], int]:
    """A property block at ``pos``: the raw value(s) of each property by identifier (a user
    property's name and value joined by a NUL), and the position after the block."""
    length, pos = varint_at(data, pos)
    end = pos + length
    found: dict[int, list[bytes]] = {}
    while pos < end:
        ident = data[pos]
        pos += 1
        if ident in _FIXED_SIZE_PROPERTIES:
            value, pos = (
                data[pos : pos + _FIXED_SIZE_PROPERTIES[ident]],
                pos + _FIXED_SIZE_PROPERTIES[ident],
            )
        elif ident == 0x0B:
            number, after = varint_at(data, pos)
            value, pos = varint(number), after
        else:
            parts = []
            for _ in range(2 if ident == 0x26 else 1):
                size = int.from_bytes(data[pos : pos + 2], "big")
                parts.append(data[pos + 2 : pos + 2 + size])
                pos += 2 + size
            value = b"\x00".join(parts)
        found.setdefault(ident, []).append(value)
    return found, end


@dataclass(frozen=True)
class Auth:
    """The enhanced-authentication fields of a CONNECT or an AUTH the client sent (the
    ``reason_code`` of a CONNECT is ``None``)."""

    reason_code: int | None
    method: str | None
    data: bytes | None


def _auth_fields(code: int | None, props: dict[int, list[bytes]]) -> Auth:
    method, data = props.get(0x15), props.get(0x16)
    return Auth(
        code, None if method is None else method[0].decode(), None if data is None else data[0]
    )


def parse_auth(raw: bytes) -> Auth:
    """Decode a whole AUTH packet the client sent."""
    assert raw[0] == 0xF0, f"expected AUTH, got {raw!r}"
    body = _body(raw)
    if not body:
        return Auth(0x00, None, None)
    props, _ = parse_properties(body, 1) if len(body) > 1 else ({}, 1)
    return _auth_fields(body[0], props)


def connect_auth(raw: bytes) -> Auth:
    """The Authentication Method and Data of a whole CONNECT packet."""
    body = _body(raw)
    props, _ = parse_properties(body, 2 + 4 + 1 + 1 + 2)  # protocol name, level, flags, keep alive
    return _auth_fields(None, props)


def packet_id_of(raw: bytes) -> int:
    """The packet id of a packet whose variable header starts with it (PUBACK, PUBREL,
    SUBSCRIBE, ...)."""
    return int.from_bytes(_body(raw)[:2], "big")


# ----------------------------------------------------------------------------- the server


class PeerLink:
    """One client connection to the scripted peer; ``number`` counts the connections from 1
    (so one script can play each connection differently), ``connect`` is its CONNECT."""

    def __init__(
        self,
        number: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_puback: Callable[[int], None],
    ) -> None:
        self.number = number
        self.connect = b""
        self._reader = reader
        self._writer = writer
        self._on_puback = on_puback

    async def read_raw(self) -> bytes:
        """The client's next packet, whatever it is (a PINGREQ goes unanswered; a PUBACK is
        counted by the peer)."""
        raw = await read_packet(self._reader)
        if raw[0] >> 4 == PUBACK:
            self._on_puback(packet_id_of(raw))
        return raw

    async def read(self) -> bytes:
        """The client's next packet (PINGREQs are answered and skipped)."""
        while True:
            raw = await self.read_raw()
            if raw[0] >> 4 != PINGREQ:
                return raw
            self.send(packet(0xD0, b""))

    async def read_until(self, *kinds: int) -> bytes:
        """Skip the client's packets up to the first of one of ``kinds`` (e.g. ``PUBLISH``)."""
        while True:
            raw = await self.read()
            if raw[0] >> 4 in kinds:
                return raw

    async def next_request(self) -> Request:
        """The client's next SUBSCRIBE or UNSUBSCRIBE (skipping other packets)."""
        return parse_request(await self.read_until(SUBSCRIBE, UNSUBSCRIBE))

    async def serve(self) -> None:
        """Until the client goes away: grant every SUBSCRIBE and UNSUBSCRIBE, answer PINGREQs,
        read and drop the rest."""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                self.send(reply(await self.next_request()))

    def send(self, data: bytes) -> None:
        self._writer.write(data)

    async def drain(self) -> None:
        """Wait until what was sent is handed to the socket."""
        await self._writer.drain()

    def abort(self) -> None:
        """Reset the connection (RST, no goodbye)."""
        self._writer.transport.abort()

    async def close(self) -> None:
        """Flush and close the connection (after a DISCONNECT, as a broker does)."""
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()
        self._writer.close()


class ScriptedPeer:
    """``asyncio.start_server`` on 127.0.0.1: connection *n* plays ``scripts[n - 1]``, and the
    last script plays every connection after that (so one script plays them all).

    Use as ``async with ScriptedPeer(script) as peer:``; ``peer.port`` is where it listens,
    ``peer.connections`` how many connections it accepted and ``peer.pubacks`` the packet ids of
    the PUBACKs the client sent (that a script read), over all connections."""

    def __init__(self, *scripts: Script, tls: ssl.SSLContext | None = None) -> None:
        if not scripts:
            raise TypeError("ScriptedPeer: needs at least one script")
        self.scripts = scripts
        self.tls = tls
        self.connections = 0
        self.port = 0
        self.pubacks: list[int] = []
        self._pubacked = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ScriptedPeer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def wait_pubacks(self, count: int, timeout: float) -> None:
        """Wait until the client acknowledged ``count`` QoS 1 messages in all."""

        async def enough() -> None:
            while len(self.pubacks) < count:
                self._pubacked.clear()
                await self._pubacked.wait()

        await asyncio.wait_for(enough(), timeout)

    def _count_puback(self, packet_id: int) -> None:
        self.pubacks.append(packet_id)
        self._pubacked.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        script = self.scripts[min(self.connections, len(self.scripts) - 1)]
        self.connections += 1
        link = PeerLink(self.connections, reader, writer, self._count_puback)
        try:
            link.connect = await link.read_raw()
            assert link.connect[0] >> 4 == CONNECT, f"expected CONNECT, got {link.connect!r}"
            await script(link)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
