"""Messages going out and coming in, their MQTT 5 properties, and publish results."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


def _as_tuple(value: object, argument: str) -> tuple[Any, ...]:
    if not isinstance(value, Iterable):
        raise TypeError(f"{argument}: must be a sequence, got {type(value).__name__}")
    return tuple(value)


def check_qos(value: object, argument: str = "qos") -> int:
    """``value`` if it is an MQTT QoS (0, 1 or 2); else an error naming ``argument``: the one
    QoS check shared by publish, subscribe, the Will and the envoys."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument}: must be an int, got {type(value).__name__}")
    if value not in (0, 1, 2):
        raise ValueError(f"{argument}: must be 0, 1 or 2, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class PublishProperties:
    """The MQTT 5 PUBLISH properties an application sets or reads.

    ``message_expiry_interval`` is in seconds; ``None`` means the message never expires.
    """

    message_expiry_interval: int | None = None
    content_type: str | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    payload_format_indicator: int | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    subscription_identifiers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        expiry = self.message_expiry_interval
        if expiry is not None:
            if isinstance(expiry, bool) or not isinstance(expiry, int):
                raise TypeError(
                    f"message_expiry_interval: must be an int or None, got {type(expiry).__name__}"
                )
            if not 0 <= expiry <= 0xFFFFFFFF:
                raise ValueError(
                    f"message_expiry_interval: must be in 0..4294967295 seconds, got {expiry}"
                )
        for name in ("content_type", "response_topic"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name}: must be a str or None, got {type(value).__name__}")
        data = self.correlation_data
        if isinstance(data, bytearray | memoryview):
            try:
                set_(self, "correlation_data", bytes(data))
            except ValueError as exc:  # a released memoryview
                raise ValueError(f"correlation_data: {exc}") from None
        elif data is not None and not isinstance(data, bytes):
            raise TypeError(f"correlation_data: must be bytes or None, got {type(data).__name__}")
        indicator = self.payload_format_indicator
        if indicator is not None and (
            isinstance(indicator, bool) or not isinstance(indicator, int) or indicator not in (0, 1)
        ):
            raise ValueError(f"payload_format_indicator: must be 0, 1 or None, got {indicator!r}")
        pairs = _as_tuple(self.user_properties, "user_properties")
        for pair in pairs:
            if not (
                isinstance(pair, tuple)
                and len(pair) == 2
                and isinstance(pair[0], str)
                and isinstance(pair[1], str)
            ):
                raise TypeError(f"user_properties: must be (str, str) pairs, got {pair!r}")
        set_(self, "user_properties", pairs)
        ids = _as_tuple(self.subscription_identifiers, "subscription_identifiers")
        for sid in ids:
            if isinstance(sid, bool) or not isinstance(sid, int) or not 1 <= sid <= 268_435_455:
                raise ValueError(
                    f"subscription_identifiers: each must be in 1..268435455, got {sid!r}"
                )
        set_(self, "subscription_identifiers", ids)

    def encoded_size(self) -> int:
        """Approximate bytes these properties occupy on the wire (for byte-bounded queues)."""
        size = 0
        if self.message_expiry_interval is not None:
            size += 5
        if self.content_type is not None:
            size += 3 + len(self.content_type.encode())
        if self.response_topic is not None:
            size += 3 + len(self.response_topic.encode())
        if self.correlation_data is not None:
            size += 3 + len(self.correlation_data)
        if self.payload_format_indicator is not None:
            size += 2
        for key, value in self.user_properties:
            size += 5 + len(key.encode()) + len(value.encode())
        size += 2 * len(self.subscription_identifiers)
        return size


NO_PROPERTIES = PublishProperties()
"""The shared empty property set (frozen, so one instance serves every message)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One application message: what ``messages()`` emits and what ``publish()`` sends."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: PublishProperties = NO_PROPERTIES
    _packet_id: int = field(default=0, repr=False, compare=False, kw_only=True)
    """Internal: the packet id a received QoS 1/2 message arrived with (0 otherwise), for the
    connection to acknowledge it. Meaningless to applications: read it with
    :func:`packet_id_of` inside rxmqtt only."""

    @property
    def size(self) -> int:
        """Bytes counted against queue bounds: topic + payload + properties."""
        props = self.properties
        extra = 0 if props is NO_PROPERTIES else props.encoded_size()
        return len(self.topic.encode()) + len(self.payload) + extra


_new_object = object.__new__
_slots = Message.__dict__  # each field's slot descriptor
_set_topic = _slots["topic"].__set__
_set_payload = _slots["payload"].__set__
_set_qos = _slots["qos"].__set__
_set_retain = _slots["retain"].__set__
_set_properties = _slots["properties"].__set__
_set_packet_id = _slots["_packet_id"].__set__


def checked_message(
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool,
    properties: PublishProperties,
    packet_id: int = 0,
) -> Message:
    """A :class:`Message` from fields already checked (a decoded PUBLISH, ``publish()``'s
    validated arguments): the same object as ``Message(...)`` builds, in half the time (the
    frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``). One is
    built per message sent and per message received."""
    message: Message = _new_object(Message)
    _set_topic(message, topic)
    _set_payload(message, payload)
    _set_qos(message, qos)
    _set_retain(message, retain)
    _set_properties(message, properties)
    _set_packet_id(message, packet_id)
    return message


def packet_id_of(message: Message) -> int:
    """The packet id ``message`` arrived with (0: QoS 0, or not received from a broker)."""
    return message._packet_id  # noqa: SLF001 - the field is this module's


@dataclass(frozen=True, slots=True)
class PublishResult:
    """The outcome of an acknowledged publish.

    For QoS 0 the message was written to the socket (``reason_code`` 0, nothing acknowledged);
    for QoS 1 it is the PUBACK's reason code, for QoS 2 the PUBREC's (then PUBCOMP completed).
    """

    topic: str
    qos: int
    reason_code: int = 0
    reason: str = "Success"
