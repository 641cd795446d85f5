"""``publish()``'s arguments checked and turned into a :class:`Message`, each bad one refused at
once with an error naming it (nothing invalid ever reaches the queue or the wire)."""

from __future__ import annotations

import dataclasses

from ..broker_limits import BrokerLimits
from ..message import NO_PROPERTIES, Message, PublishProperties, check_qos, checked_message
from ..settings._protocol import MQTT5_NEEDED, mqtt5_only_properties
from ..topics import validate_topic


def message_from_arguments(
    topic: str,
    payload: object,
    qos: int,
    retain: bool,
    properties: PublishProperties | None,
    message_expiry_interval: int | None,
    limits: BrokerLimits | None,
    *,
    v311: bool = False,
) -> Message:
    """The message ``publish()`` was asked to send; ``TypeError``/``ValueError`` naming the
    argument otherwise (``limits``: what the broker's CONNACK allows, once connected; ``v311``:
    the connection speaks MQTT 3.1.1, whose PUBLISH has no properties)."""
    topic = validate_topic(topic)
    if type(qos) is not int or not 0 <= qos <= 2:  # (a bool is refused too, by check_qos)
        qos = check_qos(qos)
    if not isinstance(retain, bool):
        raise TypeError(f"retain: must be a bool, got {type(retain).__name__}")
    data = payload if type(payload) is bytes else as_payload(payload)
    if properties is None and message_expiry_interval is None:
        message = checked_message(topic, data, qos, retain, NO_PROPERTIES)
        return message if limits is None else _within(message, limits)
    if properties is None:
        properties = NO_PROPERTIES
    elif not isinstance(properties, PublishProperties):
        raise TypeError(f"properties: must be a PublishProperties, got {type(properties).__name__}")
    if v311:
        needs_mqtt5 = mqtt5_only_properties(properties, "properties")
        if needs_mqtt5 is None and message_expiry_interval is not None:
            needs_mqtt5 = f"message_expiry_interval: {MQTT5_NEEDED} message expiry"
        if needs_mqtt5 is not None:
            raise ValueError(needs_mqtt5)
    if message_expiry_interval is not None:  # (PublishProperties checks it)
        properties = dataclasses.replace(
            properties, message_expiry_interval=message_expiry_interval
        )
    _check_properties(properties, data)
    message = checked_message(topic, data, qos, retain, properties)
    return message if limits is None else _within(message, limits)


def _within(message: Message, limits: BrokerLimits) -> Message:
    """``message`` if the broker's CONNACK allows it, else ``ValueError`` naming the argument."""
    refusal = limits.refusal(message)
    if refusal is not None:
        argument, _, limit = refusal
        raise ValueError(f"{argument}: {limit}")
    return message


def _check_properties(properties: PublishProperties, payload: bytes) -> None:
    """What every broker refuses by closing the connection, whatever its CONNACK said."""
    if properties.payload_format_indicator == 1:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"payload: not valid UTF-8 ({exc.reason} at byte {exc.start}), but "
                "payload_format_indicator=1 declares it UTF-8 text (a broker refuses it with "
                "0x99 Payload format invalid); send it with payload_format_indicator 0 or None"
            ) from None
    if properties.response_topic is not None:  # (a wildcard there is a Protocol Error, 0x82)
        validate_topic(properties.response_topic, argument="properties.response_topic")


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
