"""PUBLISH packets, bytes in and out: the one encoder of every PUBLISH rxmqtt sends first (paho
re-encodes only its session's re-sends) and the one decoder of every PUBLISH it receives.

paho's own path costs, per message, a ``Properties`` object (two 27-entry tables, then a
``clear()`` probing each) even without properties, an ``MQTTMessage`` with a
``threading.Condition``, a topic re-check and a formatted log line; here properties are decoded
only when a packet has some, and the common block a broker adds (Subscription Identifiers
alone) without paho at all.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from ..message import NO_PROPERTIES, Message, PublishProperties, checked_message
from ._convert import unpack_publish_properties

PUBLISH = 0x30
"""The PUBLISH packet type, in the fixed header's high nibble."""

MAX_REMAINING_LENGTH = 268_435_455
"""The largest remaining length MQTT can encode (four length bytes)."""

_SUBSCRIPTION_IDENTIFIER = 0x0B


class MalformedPublish(ValueError):
    """A PUBLISH that cannot be decoded (MQTT 5: a Malformed Packet, reason code 0x81)."""


class IncomingPublish(NamedTuple):
    """A decoded PUBLISH: the message and its packet id (0 for QoS 0). (A tuple: one is built
    per message received.)"""

    message: Message
    mid: int
    dup: bool


def remaining_length(value: int) -> bytes:
    """``value`` as MQTT's Variable Byte Integer.

    >>> remaining_length(0), remaining_length(127), remaining_length(128), remaining_length(16_384)
    (b'\\x00', b'\\x7f', b'\\x80\\x01', b'\\x80\\x80\\x01')
    """
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_publish(
    topic: bytes,
    payload: bytes,
    qos: int,
    retain: bool,
    mid: int,
    properties: bytes | None,
) -> bytearray:
    """A whole PUBLISH packet (DUP 0). ``properties``: the encoded property block, ``b"\\x00"``
    for none (MQTT 5), or None for a protocol without properties (MQTT 3.1.1)."""
    size = 2 + len(topic) + len(payload) + (2 if qos else 0)
    if properties is not None:
        size += len(properties)
    if size > MAX_REMAINING_LENGTH:
        raise ValueError(
            f"payload: a PUBLISH of {size} bytes is over MQTT's limit of {MAX_REMAINING_LENGTH}"
        )
    packet = bytearray(_HEADERS[(qos << 1) | retain])
    packet += _SIZES[size] if size < 0x80 else remaining_length(size)
    packet += len(topic).to_bytes(2, "big")
    packet += topic
    if qos:
        packet += mid.to_bytes(2, "big")
    if properties is not None:
        packet += properties
    packet += payload
    return packet


_HEADERS = [bytes((PUBLISH | flags,)) for flags in range(8)]
"""The fixed header's first byte for each QoS and retain (DUP 0), by ``qos << 1 | retain``."""

_SIZES = [bytes((size,)) for size in range(0x80)]
"""The one-byte remaining lengths."""


def decode_publish(header: int, body: bytes | bytearray, with_properties: bool) -> IncomingPublish:
    """The PUBLISH whose fixed header's first byte is ``header`` and whose variable header and
    payload are ``body``; ``with_properties``: MQTT 5 (a property block follows the packet id)."""
    qos = (header & 0x06) >> 1
    if qos == 3:
        raise MalformedPublish("a PUBLISH with QoS 3")
    try:
        end = 2 + int.from_bytes(body[:2], "big")
        raw_topic = bytes(body[2:end])
        if len(raw_topic) != end - 2:
            raise IndexError
        pos = end
        mid = 0
        if qos:
            mid = (body[pos] << 8) | body[pos + 1]
            pos += 2
        props = NO_PROPERTIES
        if with_properties:
            props, pos = _decode_properties(body, pos)
    except IndexError:
        raise MalformedPublish("a PUBLISH shorter than its headers") from None
    try:
        topic = raw_topic.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPublish(f"a PUBLISH topic is not valid UTF-8: {raw_topic!r}") from None
    message = checked_message(topic, bytes(body[pos:]), qos, bool(header & 0x01), props, mid)
    return IncomingPublish(message, mid, bool(header & 0x08))


def _decode_properties(body: bytes | bytearray, pos: int) -> tuple[PublishProperties, int]:
    """The property block at ``pos``: (properties, position after it)."""
    length = body[pos]
    if length == 0:
        return NO_PROPERTIES, pos + 1
    # (a one-byte length: the common block, remembered by its bytes)
    identified = _remembered(body, pos) if length < 0x80 else only_identifiers(body, pos)
    if identified is not None:
        return identified
    try:
        props, used = unpack_publish_properties(body[pos:])
    except Exception as exc:  # paho raises several kinds for a bad block
        raise MalformedPublish(f"a PUBLISH property block cannot be decoded: {exc}") from None
    return props, pos + used


KNOWN_BLOCKS_SIZE = 1024
"""Property blocks of Subscription Identifiers alone, remembered with their decoded properties
(a subscription's messages all carry the same block)."""

_KNOWN_BLOCKS: dict[bytes, PublishProperties] = {}


def _remembered(body: bytes | bytearray, pos: int) -> tuple[PublishProperties, int] | None:
    """``only_identifiers`` for the block at ``pos`` (its length in one byte), answered from
    :data:`_KNOWN_BLOCKS` when the same bytes were seen before."""
    end = pos + 1 + body[pos]
    block = bytes(body[pos:end])
    known = _KNOWN_BLOCKS.get(block)
    if known is None:
        identified = only_identifiers(body, pos)
        if identified is None:
            return None
        if len(_KNOWN_BLOCKS) >= KNOWN_BLOCKS_SIZE:
            _KNOWN_BLOCKS.clear()
        known = _KNOWN_BLOCKS[block] = identified[0]
    return known, end


@functools.lru_cache(maxsize=1024)
def _identified(ids: tuple[int, ...]) -> PublishProperties:
    """The (shared, frozen) properties of a message that carries only these identifiers."""
    return PublishProperties(subscription_identifiers=ids)


def _read_varint(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    """A Variable Byte Integer at ``pos``: (value, position after it)."""
    value, shift = 0, 0
    for _ in range(4):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise MalformedPublish("a Variable Byte Integer longer than four bytes")


def only_identifiers(data: bytes | bytearray, pos: int) -> tuple[PublishProperties, int] | None:
    """Decode a property block made only of Subscription Identifiers (what a broker adds to
    each message of a subscription that has one) without paho's ``Properties``, which costs
    tens of microseconds a message; None for any other block (paho decodes it)."""
    length, start = _read_varint(data, pos)
    end = start + length
    ids: list[int] = []
    pos = start
    while pos < end:
        if data[pos] != _SUBSCRIPTION_IDENTIFIER:
            return None
        value, pos = _read_varint(data, pos + 1)
        ids.append(value)
    if pos != end or not ids or 0 in ids:
        return None  # malformed or a zero identifier: paho's decoder reports it
    return _identified(tuple(ids)), end
