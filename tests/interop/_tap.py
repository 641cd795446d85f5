"""``MqttTap``: a loopback TCP relay that reads the MQTT packets going through it.

It records which QoS 1 messages the broker sent the client (by packet id) and which of them the
client acknowledged with PUBACK, so a test can check the client's promise "what I acknowledged,
I delivered to the application" from the wire, not from the client's own word.
Runs on the test's asyncio loop; ``reset()`` cuts the client off with RST and refuses new
connections, like ``FaultProxy.refuse(); FaultProxy.reset()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field


def _varint(data: bytes | bytearray, i: int) -> tuple[int, int] | None:
    value, shift = 0, 0
    while i < len(data):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        shift += 7
        i += 1
        if not byte & 0x80:
            return value, i
    return None


def split_packets(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Remove and return the complete packets at the start of ``buffer`` as (byte 1, body)."""
    packets = []
    while buffer:
        parsed = _varint(buffer, 1)
        if parsed is None:
            break
        length, start = parsed
        if len(buffer) < start + length:
            break
        packets.append((buffer[0], bytes(buffer[start : start + length])))
        del buffer[: start + length]
    return packets


def parse_publish(first: int, body: bytes) -> tuple[str, int | None, bytes]:
    """(topic, packet id or None for QoS 0, payload) of an MQTT 5 PUBLISH."""
    qos = (first >> 1) & 0x03
    topic_len = int.from_bytes(body[:2], "big")
    topic = body[2 : 2 + topic_len].decode()
    i = 2 + topic_len
    packet_id = None
    if qos:
        packet_id = int.from_bytes(body[i : i + 2], "big")
        i += 2
    parsed = _varint(body, i)
    assert parsed is not None
    props_len, i = parsed
    return topic, packet_id, body[i + props_len :]


@dataclass
class TapRecord:
    sent_to_client: list[bytes] = field(default_factory=list)
    """Payloads of every PUBLISH the broker sent, in order."""
    acked_by_client: list[bytes] = field(default_factory=list)
    """Payloads of the QoS 1 PUBLISHes the client acknowledged with PUBACK."""
    in_flight: dict[int, bytes] = field(default_factory=dict)


class MqttTap:
    """Relay 127.0.0.1:<port> -> (host, port), reading MQTT 5 packets both ways."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.record = TapRecord()
        self.port = 0

    async def start(self) -> MqttTap:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            s_reader, s_writer = await asyncio.open_connection(*self._target)
        except OSError:
            c_writer.close()
            return
        self._writers += [c_writer, s_writer]
        for coro in (
            self._pump(c_reader, s_writer, self._from_client),
            self._pump(s_reader, c_writer, self._from_server),
        ):
            task = asyncio.get_running_loop().create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        inspect: Callable[[int, bytes], None],
    ) -> None:
        buffer = bytearray()
        try:
            while data := await reader.read(65536):
                buffer += data
                for first, body in split_packets(buffer):
                    inspect(first, body)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _from_server(self, first: int, body: bytes) -> None:
        if first & 0xF0 == 0x30:
            _, packet_id, payload = parse_publish(first, body)
            self.record.sent_to_client.append(payload)
            if packet_id is not None:
                self.record.in_flight[packet_id] = payload

    def _from_client(self, first: int, body: bytes) -> None:
        if first & 0xF0 == 0x40:
            packet_id = int.from_bytes(body[:2], "big")
            payload = self.record.in_flight.pop(packet_id, None)
            if payload is not None:
                self.record.acked_by_client.append(payload)

    def reset(self) -> None:
        """RST every relayed connection and refuse new ones."""
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.reset()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
