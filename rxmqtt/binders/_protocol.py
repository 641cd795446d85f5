"""The AIO wire protocol the envoys speak: reserved user properties, status codes, versions.

Telemetry and commands are plain MQTT 5 messages; these conventions (Azure IoT Operations,
``doc/reference/message-metadata.md``) make a message a telemetry sample or a command
request/response that the AIO .NET, Go and Rust envoys understand:

- ``__ts``: a hybrid logical clock timestamp (:mod:`._hlc`); ``__srcId``: the sender's client id;
  ``__protVer``: the protocol version (``major.minor``, absent means ``1.0``).
- On responses: ``__stat`` (an HTTP-like code), ``__stMsg`` (the reason), ``__apErr`` (``true``
  when the application, not the envoy, reported the error), ``__propName``/``__propVal`` (the
  offending header or property), ``__supProtMajVer``/``__requestProtVer`` (on a 505).
- User properties starting with ``__`` are reserved; applications may not set them.
- Request/response pairing uses the MQTT 5 Response Topic and a 16-byte Correlation Data, and a
  request's Message Expiry Interval bounds how long it may wait anywhere.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import IntEnum

RESERVED_PREFIX = "__"
TIMESTAMP_PROPERTY = "__ts"
SOURCE_ID_PROPERTY = "__srcId"
PROTOCOL_VERSION_PROPERTY = "__protVer"
STATUS_PROPERTY = "__stat"
STATUS_MESSAGE_PROPERTY = "__stMsg"
APPLICATION_ERROR_PROPERTY = "__apErr"
PROPERTY_NAME_PROPERTY = "__propName"
PROPERTY_VALUE_PROPERTY = "__propVal"
SUPPORTED_MAJOR_VERSIONS_PROPERTY = "__supProtMajVer"
REQUEST_PROTOCOL_VERSION_PROPERTY = "__requestProtVer"

PROTOCOL_VERSION = "1.0"
"""The version every envoy here sends."""
SUPPORTED_MAJOR_VERSIONS: tuple[int, ...] = (1,)
"""The major versions the envoys here accept."""


def parse_version(text: str | None) -> tuple[int, int] | None:
    """``major.minor`` of a ``__protVer`` value (absent: ``(1, 0)``), ``None`` when unparsable."""
    if text is None:
        return (1, 0)
    major, dot, minor = text.partition(".")
    if not dot or not major.isdigit() or not minor.isdigit():
        return None
    return (int(major), int(minor))


MAX_EXPIRY_SECONDS = 0xFFFFFFFF
"""The largest Message Expiry Interval MQTT 5 can carry (a four-byte integer)."""


class Status(IntEnum):
    """The AIO status codes (``__stat``) of a command response."""

    OK = 200
    NO_CONTENT = 204
    BAD_REQUEST = 400
    """A header is missing or invalid, the payload cannot be decoded, or there is no expiry."""
    REQUEST_TIMEOUT = 408
    """The execution timeout passed before the handler finished."""
    UNSUPPORTED_MEDIA_TYPE = 415
    """The request's content type is not one the executor accepts."""
    INTERNAL_ERROR = 500
    """The handler raised (anything but :class:`CommandExecutionError`)."""
    SERVICE_UNAVAILABLE = 503
    """The executor's state was invalid, e.g. the invoker's clock ran too far ahead."""
    VERSION_NOT_SUPPORTED = 505
    """The request's protocol major version is not supported."""


def user_property(properties: tuple[tuple[str, str], ...], name: str) -> str | None:
    """The last value of user property ``name`` (MQTT allows repeats), or ``None``."""
    found: str | None = None
    for key, value in properties:
        if key == name:
            found = value
    return found


def parse_timestamp(text: str | None) -> datetime | None:
    """The wall-clock part of a ``__ts`` value as a UTC datetime; ``None`` when absent or
    malformed."""
    if not text:
        return None
    millis, _, rest = text.partition(":")
    if len(millis) != 15 or not millis.isdigit() or not rest:
        return None
    return datetime.fromtimestamp(int(millis) / 1000, UTC)


def iso_duration(seconds: float) -> str:
    """``seconds`` as an ISO 8601 duration, the way AIO reports timeouts (``PT1S``,
    ``PT0.5S``, ``PT1M30S``)."""
    whole_minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(whole_minutes), 60)
    text = "PT"
    if hours:
        text += f"{hours}H"
    if minutes:
        text += f"{minutes}M"
    if rest or text == "PT":
        text += f"{rest:g}S"
    return text


def expiry_for(seconds: float) -> int:
    """Whole seconds of Message Expiry Interval covering ``seconds``: rounded up, at least 1
    (Mosquitto reads 0 as "never expires"), at most the protocol maximum."""
    return max(1, min(MAX_EXPIRY_SECONDS, math.ceil(seconds)))


def check_timeout(value: object, argument: str = "timeout") -> float:
    """``value`` as a positive, finite number of seconds that fits a Message Expiry Interval."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{argument}: must be a number of seconds, got {type(value).__name__}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{argument}: must be a positive, finite number of seconds, got {value!r}")
    if math.ceil(seconds) > MAX_EXPIRY_SECONDS:
        raise ValueError(
            f"{argument}: must be at most {MAX_EXPIRY_SECONDS} seconds (the largest Message "
            f"Expiry Interval), got {value!r}"
        )
    return seconds
