"""``close()`` while messages are still arriving: does the broker get the DISCONNECT?

Found with the shared-subscription tests on Mosquitto: a consumer that calls ``close()`` in the
middle of a burst sometimes has its Will published and its last QoS 1 messages redelivered on
its next session -- Mosquitto logs "Client ... disconnected: Broken pipe" instead of "Received
DISCONNECT". The client closes its socket while unread bytes sit in its receive buffer, so the
kernel sends RST instead of FIN, and an RST makes the broker's kernel drop what the client had
sent but the broker not yet read: the PUBACKs and the DISCONNECT. This test makes that race
deterministic with a scripted broker that floods the client and reads nothing until it has
closed.
"""

from __future__ import annotations

import asyncio
import contextlib

from rxmqtt import Connection, ConnectionSettings, ConnectionState, Message
from rxmqtt.testing._raw import packet
from rxmqtt.testing.recorder import Recorder

from ._tap import split_packets
from .conftest import FAST, client_id


async def _read_packet(reader: asyncio.StreamReader, buffer: bytearray) -> tuple[int, bytes]:
    while True:
        packets = split_packets(buffer)
        if packets:
            first, body = packets[0]
            # put back anything after the first packet
            rest = b"".join(packet(f, b) for f, b in packets[1:])
            buffer[:0] = rest
            return first, body
        data = await reader.read(65536)
        if not data:
            raise ConnectionError("closed")
        buffer += data


def _publish(packet_id: int, payload: bytes) -> bytes:
    body = b"\x00\x07flood/x" + packet_id.to_bytes(2, "big") + b"\x00" + payload
    return packet(0x32, body)


async def test_close_during_a_burst_still_delivers_the_disconnect() -> None:
    seen: list[int] = []
    flooded = asyncio.Event()
    finished = asyncio.Event()

    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = bytearray()
        await _read_packet(reader, buffer)  # CONNECT
        writer.write(b"\x20\x03\x00\x00\x00")  # CONNACK, success, no properties
        first, body = await _read_packet(reader, buffer)
        assert first == 0x82, hex(first)
        writer.write(b"\x90\x04" + body[:2] + b"\x00\x01")  # SUBACK granted QoS 1
        writer.write(b"".join(_publish(1 + i % 60000, b"x" * 400) for i in range(4000)))
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(writer.drain(), 2.0)
        flooded.set()
        try:  # read what the client sent until its DISCONNECT, a reset or EOF
            while True:
                first, _ = await _read_packet(reader, buffer)
                seen.append(first)
                if first == 0xE0:
                    break
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        writer.close()
        finished.set()

    server = await asyncio.start_server(broker, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        settings = ConnectionSettings(host="127.0.0.1", port=port, client_id=client_id("flush"))
        conn = Connection(settings, reconnect=FAST)
        got: Recorder[Message] = Recorder(conn.messages("flood/#", qos=1))
        conn.start()
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        await got.wait_for_count(1, 5)
        await conn.close()
        await asyncio.wait_for(flooded.wait(), 5)
        await asyncio.wait_for(finished.wait(), 5)
    assert 0xE0 in seen, f"the broker read {len(seen)} packets and no DISCONNECT"
