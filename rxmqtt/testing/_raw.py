"""Raw MQTT 5 bytes, for probing a broker and for tests that play a hostile or scripted peer
without an MQTT library in between."""

from __future__ import annotations

import asyncio


def varint(value: int) -> bytes:
    """MQTT's Variable Byte Integer (a packet's remaining length): 7 bits a byte, low first."""
    out = bytearray()
    while True:
        value, byte = divmod(value, 128)
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def varint_at(data: bytes, pos: int) -> tuple[int, int]:
    """Decode the Variable Byte Integer starting at ``data[pos]``: its value, and the position
    just after it."""
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def mqtt_str(text: str | bytes) -> bytes:
    """A UTF-8 string (or binary data) with its two-byte length prefix."""
    raw = text.encode() if isinstance(text, str) else text
    return len(raw).to_bytes(2, "big") + raw


def packet(header: int, body: bytes) -> bytes:
    """A whole control packet: the header byte, the remaining length, the body."""
    return bytes([header]) + varint(len(body)) + body


async def read_packet(reader: asyncio.StreamReader) -> bytes:
    """Read one whole control packet (header, remaining length, body) from ``reader``."""
    header = await reader.readexactly(1)
    length, shift, raw = 0, 0, b""
    while True:
        byte = await reader.readexactly(1)
        raw += byte
        length |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80 or shift > 21:
            break
    return header + raw + await reader.readexactly(length)
