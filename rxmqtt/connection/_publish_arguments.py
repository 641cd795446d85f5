"""``publish()``'s arguments checked and turned into a :class:`Message`, each bad one refused at
once with an error naming it (nothing invalid ever reaches the queue or the wire)."""

from __future__ import annotations

import dataclasses

from ..engine import BrokerLimits
from ..message import NO_PROPERTIES, Message, PublishProperties, check_qos
from ..topics import validate_topic

_PUBLISH_HEADER_ALLOWANCE = 16
"""Bytes a PUBLISH adds around topic, payload and properties (fixed header, lengths, id)."""


def message_from_arguments(
    topic: str,
    payload: object,
    qos: int,
    retain: bool,
    properties: PublishProperties | None,
    message_expiry_interval: int | None,
    limits: BrokerLimits | None,
) -> Message:
    """The message ``publish()`` was asked to send; ``TypeError``/``ValueError`` naming the
    argument otherwise (``limits``: what the broker's CONNACK allows, once connected)."""
    topic = validate_topic(topic)
    qos = check_qos(qos)
    if not isinstance(retain, bool):
        raise TypeError(f"retain: must be a bool, got {type(retain).__name__}")
    data = as_payload(payload)
    if properties is None:
        properties = NO_PROPERTIES
    elif not isinstance(properties, PublishProperties):
        raise TypeError(f"properties: must be a PublishProperties, got {type(properties).__name__}")
    if message_expiry_interval is not None:  # (PublishProperties checks it)
        properties = dataclasses.replace(
            properties, message_expiry_interval=message_expiry_interval
        )
    message = Message(topic, data, qos, retain, properties)
    if limits is not None and limits.maximum_packet_size is not None:
        approx_packet = message.size + _PUBLISH_HEADER_ALLOWANCE
        if approx_packet > limits.maximum_packet_size:
            raise ValueError(
                f"payload: the PUBLISH would be about {approx_packet} bytes, over the "
                f"broker's maximum packet size of {limits.maximum_packet_size}"
            )
    return message


def as_payload(payload: object) -> bytes:
    """``payload`` as bytes: bytes-like as is, ``str`` as UTF-8."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray | memoryview):
        try:
            return bytes(payload)
        except ValueError as exc:  # a released memoryview
            raise ValueError(f"payload: {exc}") from None
    if isinstance(payload, str):
        try:
            return payload.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                "payload: a str payload must be valid UTF-8 (lone surrogate)"
            ) from None
    raise TypeError(
        f"payload: must be bytes, bytearray, memoryview or str, got {type(payload).__name__}"
    )
