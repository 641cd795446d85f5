"""The Last Will and Testament, validated so that an MQTT CONNECT packet can carry it."""

from __future__ import annotations

from dataclasses import dataclass, field

from rxmqtt.message import PublishProperties, check_qos
from rxmqtt.topics import validate_topic

from .._checks import MAX_UINT16, MAX_UINT32, check_bool, check_int

__all__ = ["Will"]


@dataclass(frozen=True, slots=True)
class Will:
    """The Last Will and Testament the broker publishes if the client vanishes ungracefully.

    ``delay_interval`` (seconds) lets a quick reconnect cancel it; a ``str`` payload is UTF-8.
    """

    topic: str
    payload: bytes | str = b""
    qos: int = 0
    retain: bool = False
    delay_interval: int = 0
    properties: PublishProperties = field(default_factory=PublishProperties)

    def __post_init__(self) -> None:
        validate_topic(self.topic, argument="will.topic")
        payload: object = self.payload
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        elif isinstance(payload, bytearray | memoryview):
            payload = bytes(payload)
        if not isinstance(payload, bytes):
            raise TypeError(f"will.payload: must be bytes or str, got {type(payload).__name__}")
        if len(payload) > MAX_UINT16:
            raise ValueError(
                f"will.payload: must be at most {MAX_UINT16} bytes, got {len(payload)}"
            )
        object.__setattr__(self, "payload", payload)
        check_qos(self.qos, "will.qos")
        check_bool("will.retain", self.retain)
        check_int("will.delay_interval", self.delay_interval, 0, MAX_UINT32, " seconds")
        if not isinstance(self.properties, PublishProperties):
            raise TypeError(
                "will.properties: must be a PublishProperties, "
                f"got {type(self.properties).__name__}"
            )
