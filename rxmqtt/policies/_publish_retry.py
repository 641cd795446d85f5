"""How a publish is retried when its acknowledgement is late or a transient refusal."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._checks import check_count, check_number
from ._backoff import Backoff

__all__ = ["PublishRetry"]


@dataclass(frozen=True)
class PublishRetry:
    """How the connection handles a publish whose acknowledgement is late or negative.

    Args:
        ack_timeout: seconds to wait for the PUBACK/PUBCOMP of a QoS 1/2 publish. A late ack
            marks the connection dead (``Disconnect.source == CLIENT``): MQTT 5 allows re-sending
            an unacknowledged publish only on a new connection, so the message is re-sent after
            the reconnect. ``None`` waits forever (keep-alive still detects a dead network).
        max_attempts: how many times a publish refused with a retriable reason code (see
            :func:`~rxmqtt.policies.is_retriable_publish_code`: 0x97 Quota exceeded, 0x89 Server
            busy) is re-sent after the first send before its error is delivered; 0 never re-sends.
        backoff: the delays between those re-sends.

    Raises:
        TypeError: an argument has the wrong type (the message names it).
        ValueError: an argument is out of range (the message names it).
    """

    ack_timeout: float | None = 30.0
    max_attempts: int = 3
    backoff: Backoff = Backoff(initial=0.5, maximum=10.0)  # noqa: RUF009 -- frozen, shared safely

    def __post_init__(self) -> None:
        if self.ack_timeout is not None:
            timeout = check_number("ack_timeout", self.ack_timeout)
            if not timeout > 0 or math.isinf(timeout):
                raise ValueError(
                    f"ack_timeout: must be a finite number of seconds > 0 or None, "
                    f"got {self.ack_timeout!r}"
                )
        check_count("max_attempts", self.max_attempts)
        if not isinstance(self.backoff, Backoff):
            raise TypeError(f"backoff: must be a Backoff, got {self.backoff!r}")
