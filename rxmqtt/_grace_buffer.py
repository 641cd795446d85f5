"""The grace buffer: received messages that matched no ``messages()`` subscription, kept for a
bounded time after each CONNACK so that a subscriber created just after ``start()`` still gets
what a resumed session delivered first. Pure: the clock is injected, the connection owns timers.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from .message import Message
from .policies import GracePeriod
from .topics import matches


@dataclass(frozen=True, slots=True)
class _Kept:
    message: Message
    size: int
    until: float
    """The end of the grace period the message arrived in."""
    arrived: float


class Claimed(NamedTuple):
    """What :meth:`GraceBuffer.claim` took out, both in arrival order."""

    messages: list[Message]
    """For the subscriber; a Message Expiry Interval is reduced by the time the message was
    kept (MQTT 5 forwards the remaining lifetime), so a handler's deadline stays honest."""
    expired: list[Message]
    """Matched, but their own Message Expiry Interval ran out while kept: never handed out
    stale."""


_NOTHING_KEPT: deque[_Kept] = deque()
"""Shared by every buffer that never kept a message, never added to: an empty deque is 768
bytes, and most connections never keep one."""


class GraceBuffer:
    """Unmatched messages in arrival order, each kept until the grace period it arrived in ends,
    within the policy's message and byte bounds (the oldest is pushed out first).

    Every method returns what leaves the buffer unclaimed, oldest first, so that the caller can
    account for it (``Connection.unmatched_messages`` or ``dropped``).
    """

    def __init__(self, policy: GracePeriod, clock: Callable[[], float]) -> None:
        self._policy = policy
        self._clock = clock
        self._kept: deque[_Kept] = _NOTHING_KEPT
        self._bytes = 0
        self._window_end = -math.inf

    def __len__(self) -> int:
        return len(self._kept)

    @property
    def bytes(self) -> int:
        """``Message.size`` summed over the kept messages."""
        return self._bytes

    @property
    def next_expiry(self) -> float | None:
        """When the oldest kept message expires (``None`` when nothing is kept)."""
        return self._kept[0].until if self._kept else None

    def open_window(self) -> None:
        """A CONNACK arrived: unmatched messages are kept for the policy's ``seconds`` from now."""
        self._window_end = self._clock() + self._policy.seconds

    def offer(self, message: Message) -> list[Message]:
        """Keep ``message`` if a grace period is open. Returns what does not stay: the expired
        messages, then ``message`` itself (outside a grace period or too big on its own) or the
        oldest messages it pushed out."""
        out = self.expire()
        policy = self._policy
        size = message.size
        if self._clock() >= self._window_end or size > policy.max_bytes or policy.keeps_nothing:
            out.append(message)
            return out
        if self._kept is _NOTHING_KEPT:
            self._kept = deque()
        self._kept.append(_Kept(message, size, self._window_end, self._clock()))
        self._bytes += size
        while len(self._kept) > policy.max_messages or self._bytes > policy.max_bytes:
            out.append(self._pop().message)
        return out

    def claim(self, topic_filter: str) -> Claimed:
        """Remove and return the kept messages ``topic_filter`` matches (call :meth:`expire`
        first: this hands out whatever is still kept)."""
        claimed = Claimed([], [])
        taken = [kept for kept in self._kept if matches(topic_filter, kept.message.topic)]
        if not taken:
            return claimed
        ids = {id(kept) for kept in taken}
        self._kept = deque(kept for kept in self._kept if id(kept) not in ids)
        self._bytes -= sum(kept.size for kept in taken)
        now = self._clock()
        for kept in taken:
            message = kept.message
            interval = message.properties.message_expiry_interval
            if interval is None or now == kept.arrived:
                claimed.messages.append(message)
                continue
            remaining = interval - (now - kept.arrived)
            if remaining <= 0:
                claimed.expired.append(message)
                continue
            properties = dataclasses.replace(
                message.properties, message_expiry_interval=math.ceil(remaining)
            )
            claimed.messages.append(dataclasses.replace(message, properties=properties))
        return claimed

    def expire(self) -> list[Message]:
        """Remove and return the messages whose grace period has ended."""
        now = self._clock()
        out: list[Message] = []
        while self._kept and self._kept[0].until <= now:
            out.append(self._pop().message)
        return out

    def clear(self) -> list[Message]:
        """Remove and return everything kept (the connection is closing)."""
        out = [kept.message for kept in self._kept]
        self._kept.clear()
        self._bytes = 0
        return out

    def _pop(self) -> _Kept:
        kept = self._kept.popleft()
        self._bytes -= kept.size
        return kept
