"""A scripted raw MQTT 5 broker for tests: each accepted connection plays a coroutine that
reads the client's packets and answers (or withholds answers) byte by byte, so a test sees
exactly what the client sends, e.g. which requests it re-sends after a cut link."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ._raw import mqtt_str, packet, read_packet, varint

SUBSCRIBE, UNSUBSCRIBE, PUBACK, PINGREQ, DISCONNECT = 0x8, 0xA, 0x4, 0xC, 0xE
"""Control packet types (the high nibble of the first byte)."""


@dataclass(frozen=True)
class Request:
    """A SUBSCRIBE (filters with their QoS) or UNSUBSCRIBE (QoS 0) the client sent."""

    kind: int
    packet_id: int
    filters: tuple[tuple[str, int], ...]


def _decode(raw: bytes) -> Request:
    kind = raw[0] >> 4
    i = 1
    while raw[i] & 0x80:  # remaining length
        i += 1
    i += 1
    packet_id = int.from_bytes(raw[i : i + 2], "big")
    i += 2
    props, shift = 0, 0
    while True:  # property length (a varint), then skip the properties
        byte = raw[i]
        i += 1
        props |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    i += props
    filters = []
    while i < len(raw):
        size = int.from_bytes(raw[i : i + 2], "big")
        name = raw[i + 2 : i + 2 + size].decode()
        i += 2 + size
        qos = 0
        if kind == SUBSCRIBE:
            qos = raw[i] & 0x03
            i += 1
        filters.append((name, qos))
    return Request(kind, packet_id, tuple(filters))


class Peer:
    """One accepted connection, after its CONNECT was read."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_puback: Callable[[int], None],
    ) -> None:
        self.reader = reader
        self.writer = writer
        self._on_puback = on_puback

    async def connack(self, *, session_present: bool) -> None:
        self.writer.write(packet(0x20, bytes([int(session_present), 0x00, 0x00])))
        await self.writer.drain()

    async def next_request(self) -> Request:
        """The next SUBSCRIBE or UNSUBSCRIBE (PINGREQs are answered, PUBACKs counted)."""
        while True:
            raw = await read_packet(self.reader)
            kind = raw[0] >> 4
            if kind == PINGREQ:
                self.writer.write(packet(0xD0, b""))
            elif kind == PUBACK:
                self._on_puback(int.from_bytes(raw[2:4], "big"))
            elif kind in (SUBSCRIBE, UNSUBSCRIBE):
                return _decode(raw)
            elif kind == DISCONNECT:
                raise ConnectionError("the client disconnected")

    async def ack(self, request: Request, codes: bytes | None = None) -> None:
        """SUBACK granting each requested QoS, or UNSUBACK with Success (or ``codes``)."""
        header = 0x90 if request.kind == SUBSCRIBE else 0xB0
        if codes is None:
            codes = bytes(qos for _, qos in request.filters)
        self.writer.write(packet(header, request.packet_id.to_bytes(2, "big") + b"\x00" + codes))
        await self.writer.drain()

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 0,
        packet_id: int = 1,
        message_expiry: int | None = None,
    ) -> None:
        """A PUBLISH (QoS 0 or 1; the PUBACK is counted by the broker), with a Message Expiry
        Interval if given and no other property."""
        packet_id_bytes = packet_id.to_bytes(2, "big") if qos else b""
        props = b"" if message_expiry is None else b"\x02" + message_expiry.to_bytes(4, "big")
        body = mqtt_str(topic) + packet_id_bytes + varint(len(props)) + props + payload
        self.writer.write(packet(0x30 | qos << 1, body))
        await self.writer.drain()

    async def serve(self) -> None:
        """Acknowledge every request (and answer PINGREQs) until the client goes away."""
        while True:
            await self.ack(await self.next_request())


Script = Callable[[Peer], Awaitable[None]]


class ScriptedBroker:
    """``asyncio.start_server`` on 127.0.0.1: connection *n* plays ``scripts[n]`` (the last one
    repeats). A script that returns closes the connection."""

    def __init__(self, *scripts: Script) -> None:
        self.scripts = scripts
        self.accepted = 0
        self.pubacks: list[int] = []
        """Packet ids of the PUBACKs the client sent, over all connections."""
        self._pubacked = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ScriptedBroker:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

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
        script = self.scripts[min(self.accepted, len(self.scripts) - 1)]
        self.accepted += 1
        try:
            connect = await read_packet(reader)
            assert connect[0] >> 4 == 1, f"expected CONNECT, got {connect!r}"
            await script(Peer(reader, writer, self._count_puback))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
