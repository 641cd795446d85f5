"""How envoys turn typed values into MQTT payloads and back: a small Protocol and three codecs.

A serializer is any object with ``serialize``, ``deserialize``, ``content_type`` and
``payload_format_indicator`` (see :class:`Serializer`); envoys set the last two as the MQTT 5
Content Type and Payload Format Indicator properties so receivers know what they get. Built in:
:class:`JsonSerializer` (optionally typed through ``to_json``/``from_json`` hooks),
:class:`RawBytesSerializer` and :class:`TextSerializer`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")


@runtime_checkable
class Serializer(Protocol[T]):
    """Encodes values of type ``T`` to bytes and decodes them back.

    ``serialize`` raises ``TypeError``/``ValueError`` for a value it cannot encode; ``deserialize``
    raises (any ``Exception``) for a payload it cannot decode. Envoys turn both into
    :class:`PayloadError`, at the call site or on a stream.
    """

    @property
    def content_type(self) -> str | None:
        """The MQTT 5 Content Type to send (a MIME type), or ``None`` to send none."""
        ...

    @property
    def payload_format_indicator(self) -> int | None:
        """1 when payloads are UTF-8 text, 0 for bytes, ``None`` to leave the property out."""
        ...

    def serialize(self, value: T) -> bytes:
        """The payload for ``value``."""
        ...

    def deserialize(self, payload: bytes) -> T:
        """The value a payload carries."""
        ...


@dataclass(frozen=True, slots=True)
class JsonSerializer(Generic[T]):
    """UTF-8 JSON (RFC 8259), typed through optional hooks.

    ``to_json`` turns a value into something ``json.dumps`` accepts (e.g. ``dataclasses.asdict``)
    and ``from_json`` turns the parsed JSON back into a ``T`` (e.g. ``lambda d: Reading(**d)``),
    validating it on the way; without hooks values pass through as plain JSON types. NaN and
    infinities are refused because JSON cannot carry them.
    """

    to_json: Callable[[T], Any] | None = None
    from_json: Callable[[Any], T] | None = None
    content_type: str | None = "application/json"
    payload_format_indicator: int | None = 1

    def serialize(self, value: T) -> bytes:
        """Compact UTF-8 JSON of ``to_json(value)`` (or ``value``)."""
        document = self.to_json(value) if self.to_json is not None else value
        text = json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8")

    def accepts(self, content_type: str | None, payload_format_indicator: int | None) -> bool:
        """JSON payloads: no content type, ``application/json`` or any ``+json`` type."""
        base = (content_type or "").split(";", 1)[0].strip().lower()
        return base in ("", "application/json") or base.endswith("+json")

    def deserialize(self, payload: bytes) -> T:
        """Parse the JSON, then ``from_json`` it (if set)."""
        document = json.loads(payload.decode("utf-8"))
        if self.from_json is not None:
            return self.from_json(document)
        value: T = document
        return value


@dataclass(frozen=True, slots=True)
class RawBytesSerializer:
    """Payloads as they are: ``bytes`` in, ``bytes`` out (``bytearray``/``memoryview`` accepted)."""

    content_type: str | None = "application/octet-stream"
    payload_format_indicator: int | None = None

    def serialize(self, value: bytes | bytearray | memoryview) -> bytes:
        """``value`` as ``bytes``."""
        if isinstance(value, bytes):
            return value
        if isinstance(value, bytearray | memoryview):
            return bytes(value)
        raise TypeError(f"expected bytes, bytearray or memoryview, got {type(value).__name__}")

    def accepts(self, content_type: str | None, payload_format_indicator: int | None) -> bool:
        """Any payload."""
        return True

    def deserialize(self, payload: bytes) -> bytes:
        """The payload itself."""
        return payload


@dataclass(frozen=True, slots=True)
class TextSerializer:
    """UTF-8 text: ``str`` in, ``str`` out (Payload Format Indicator 1)."""

    content_type: str | None = "text/plain; charset=utf-8"
    payload_format_indicator: int | None = 1

    def serialize(self, value: str) -> bytes:
        """``value`` encoded as UTF-8."""
        if not isinstance(value, str):
            raise TypeError(f"expected str, got {type(value).__name__}")
        return value.encode("utf-8")

    def accepts(self, content_type: str | None, payload_format_indicator: int | None) -> bool:
        """No content type or a ``text/*`` one."""
        base = (content_type or "").split(";", 1)[0].strip().lower()
        return base == "" or base.startswith("text/")

    def deserialize(self, payload: bytes) -> str:
        """The payload decoded as UTF-8."""
        return payload.decode("utf-8")


JSON: JsonSerializer[Any] = JsonSerializer()
"""The default serializer of every envoy: untyped JSON."""

RAW = RawBytesSerializer()
TEXT = TextSerializer()


def check_serializer(value: object, argument: str) -> None:
    """Raise ``TypeError`` naming ``argument`` unless ``value`` looks like a :class:`Serializer`."""
    if not isinstance(value, Serializer):
        raise TypeError(
            f"{argument}: must be a Serializer (serialize, deserialize, content_type, "
            f"payload_format_indicator), got {type(value).__name__}"
        )


def content_acceptable(
    serializer: object, content_type: str | None, payload_format_indicator: int | None
) -> bool:
    """Whether ``serializer`` decodes payloads of this Content Type and Payload Format
    Indicator: it asks the serializer's optional ``accepts(content_type, indicator)`` and, for
    serializers without one, accepts an absent content type or its own."""
    accepts = getattr(serializer, "accepts", None)
    if callable(accepts):
        return bool(accepts(content_type, payload_format_indicator))
    own = getattr(serializer, "content_type", None)
    return content_type in (None, "", own)
