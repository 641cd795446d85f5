"""GracePeriod: how long, and how much, unmatched messages wait after a CONNACK for a late
``messages()`` subscriber (a resumed session delivers its queue before the app subscribes)."""

from __future__ import annotations

from dataclasses import dataclass

from .._checks import check_count, check_seconds

__all__ = ["GracePeriod"]


@dataclass(frozen=True)
class GracePeriod:
    """Bounds of the buffer that keeps unmatched messages for a subscriber that comes late.

    For ``seconds`` after each CONNACK, a received message that no live ``messages()``
    subscription matches is kept (up to ``max_messages`` messages and ``max_bytes`` bytes of
    ``Message.size``, oldest pushed out first) and handed, in arrival order, to the first
    ``messages()`` subscription that matches it. What is pushed out or not claimed in time goes to
    ``Connection.unmatched_messages``. ``GracePeriod(seconds=0)`` keeps nothing. A kept
    message's Message Expiry Interval keeps counting down: it is handed out with the remaining
    lifetime, and not at all once expired (reported on ``dropped`` as ``EXPIRED``).

    The defaults cover an application that subscribes within seconds of ``start()`` and a
    session whose broker queued up to Mosquitto's default of 1,000 messages with room to spare.

    Raises:
        TypeError: an argument has the wrong type (the message names it).
        ValueError: an argument is out of range (the message names it).
    """

    seconds: float = 10.0
    max_messages: int = 10_000
    max_bytes: int = 16_000_000

    def __post_init__(self) -> None:
        check_seconds("seconds", self.seconds)
        check_count("max_messages", self.max_messages)
        check_count("max_bytes", self.max_bytes)

    @property
    def keeps_nothing(self) -> bool:
        """Whether this period keeps no message at all (a zero bound)."""
        return self.seconds == 0 or self.max_messages == 0 or self.max_bytes == 0
