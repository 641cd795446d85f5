"""A scripted MQTT 5 server for tests: each accepted connection is handed to a coroutine that
reads the client's packets and answers with raw bytes, so a test can play a broker edge case
(a refusing DISCONNECT, a lost session, a redirection) that no real broker shows on demand."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ._raw import mqtt_str, packet, varint

CONNECT, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 3, 4, 5, 6, 7
SUBSCRIBE, PINGREQ, DISCONNECT = 8, 12, 14

Script = Callable[["PeerLink"], Awaitable[None]]
"""What the peer does with one connection (its CONNECT already read); ``link.number`` counts the
connections from 1."""


def properties(*encoded: bytes) -> bytes:
    """A property block: its length, then the properties (see the encoders below)."""
    body = b"".join(encoded)
    return varint(len(body)) + body


def server_reference(text: str) -> bytes:
    """Property 0x1C Server Reference."""
    return b"\x1c" + mqtt_str(text)


def reason_string(text: str) -> bytes:
    """Property 0x1F Reason String."""
    return b"\x1f" + mqtt_str(text)


def retain_available(value: int) -> bytes:
    """Property 0x25 Retain Available."""
    return bytes((0x25, value))


def maximum_qos(value: int) -> bytes:
    """Property 0x24 Maximum QoS."""
    return bytes((0x24, value))


def connack(code: int = 0, *, session_present: bool = False, props: bytes = b"\x00") -> bytes:
    """CONNACK with ``code``; ``props`` is a whole property block (``properties(...)``)."""
    return packet(0x20, bytes((int(session_present), code)) + props)


def disconnect(code: int, props: bytes = b"\x00") -> bytes:
    """DISCONNECT from the server with ``code``."""
    return packet(0xE0, bytes((code,)) + props)


def ack(kind: int, packet_id: int, code: int = 0) -> bytes:
    """PUBACK / PUBREC / PUBCOMP (``kind``) for ``packet_id`` with ``code``."""
    return packet(kind << 4, packet_id.to_bytes(2, "big") + bytes((code, 0)))


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
    """Decode a whole PUBLISH packet (header byte, length, body)."""
    pos = 1
    while raw[pos] & 0x80:
        pos += 1
    body = raw[pos + 1 :]
    header = raw[0]
    qos = (header >> 1) & 3
    size = int.from_bytes(body[:2], "big")
    topic = body[2 : 2 + size].decode()
    cursor = 2 + size
    packet_id = 0
    if qos:
        packet_id = int.from_bytes(body[cursor : cursor + 2], "big")
        cursor += 2
    prop_length, shift = 0, 0
    while True:
        byte = body[cursor]
        cursor += 1
        prop_length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    payload = body[cursor + prop_length :]
    return Publish(topic, payload, qos, packet_id, bool(header & 8), bool(header & 1))


def packet_id_of(raw: bytes) -> int:
    """The packet id of a PUBREL/PUBACK-shaped packet."""
    pos = 1
    while raw[pos] & 0x80:
        pos += 1
    return int.from_bytes(raw[pos + 1 : pos + 3], "big")


class PeerLink:
    """One client connection to the scripted peer."""

    def __init__(
        self, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.number = number
        self.connect = b""
        self._reader = reader
        self._writer = writer

    async def read(self) -> bytes:
        """The client's next packet (PINGREQs are answered and skipped)."""
        while True:
            raw = await self.read_raw()
            if raw[0] >> 4 == PINGREQ:
                self.send(packet(0xD0, b""))
                continue
            return raw

    async def read_until(self, kind: int) -> bytes:
        """Skip the client's packets up to the first of ``kind`` (e.g. ``PUBLISH``)."""
        while True:
            raw = await self.read()
            if raw[0] >> 4 == kind:
                return raw

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

    async def idle(self) -> None:
        """Read (and answer PINGREQs) until the client goes away."""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await self.read()

    async def read_raw(self) -> bytes:
        """The client's next packet, whatever it is (a PINGREQ goes unanswered)."""
        header = await self._reader.readexactly(1)
        length, shift, raw = 0, 0, b""
        while True:
            byte = await self._reader.readexactly(1)
            raw += byte
            length |= (byte[0] & 0x7F) << shift
            shift += 7
            if not byte[0] & 0x80:
                break
        return header + raw + await self._reader.readexactly(length)


class ScriptedPeer:
    """``asyncio.start_server`` on 127.0.0.1 running ``script`` for every connection.

    Use as ``async with ScriptedPeer(script) as peer:``; ``peer.port`` is where it listens and
    ``peer.connections`` how many connections it accepted."""

    def __init__(self, script: Script, *, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.connections = 0
        self.port = 0
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

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.connections += 1
        link = PeerLink(self.connections, reader, writer)
        try:
            link.connect = await link.read_raw()
            assert link.connect[0] >> 4 == CONNECT, f"expected CONNECT, got {link.connect!r}"
            await self.script(link)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
