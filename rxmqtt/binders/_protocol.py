"""The wire conventions the envoys share: user property names, status codes, time helpers.

Telemetry and commands are plain MQTT 5 messages; these conventions are what make a message a
telemetry sample or a command request/response, so other implementations can interoperate:

- ``source-id``: the client id of the sender (telemetry, command requests).
- ``timestamp``: when the sender created the message, ISO 8601 UTC with milliseconds
  (``2024-05-01T12:00:00.123Z``).
- ``status`` / ``status-message``: on a command response, an HTTP-like code (200 OK, 400 bad
  request, 500 handler error, ...) and a human-readable reason.
- The request/response pairing uses the MQTT 5 Response Topic and Correlation Data properties,
  and the request's Message Expiry Interval bounds how long it may wait anywhere.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import IntEnum

SOURCE_ID_PROPERTY = "source-id"
TIMESTAMP_PROPERTY = "timestamp"
STATUS_PROPERTY = "status"
STATUS_MESSAGE_PROPERTY = "status-message"

MAX_EXPIRY_SECONDS = 0xFFFFFFFF
"""The largest Message Expiry Interval MQTT 5 can carry (a four-byte integer)."""


class Status(IntEnum):
    """The status codes a :class:`CommandExecutor` itself responds with."""

    OK = 200
    BAD_REQUEST = 400
    """The request could not be decoded, or it lacks a Message Expiry Interval."""
    INTERNAL_ERROR = 500
    """The handler raised (anything but :class:`CommandExecutionError`)."""


def user_property(properties: tuple[tuple[str, str], ...], name: str) -> str | None:
    """The last value of user property ``name`` (MQTT allows repeats), or ``None``."""
    found: str | None = None
    for key, value in properties:
        if key == name:
            found = value
    return found


def format_timestamp(moment: datetime) -> str:
    """``moment`` as ISO 8601 UTC with milliseconds and a ``Z`` suffix."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def now_timestamp() -> str:
    """The current wall-clock time, formatted for the ``timestamp`` user property."""
    return format_timestamp(datetime.now(UTC))


def parse_timestamp(text: str | None) -> datetime | None:
    """Parse a ``timestamp`` user property; ``None`` when absent or not ISO 8601."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


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
