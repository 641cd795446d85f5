"""The hybrid logical clock AIO stamps on every message (user property ``__ts``).

A timestamp is ``<15-digit ms since the epoch>:<5-digit counter>:<node id>``. The clock never
goes backwards: each local event takes ``max(wall clock, last)`` and bumps the counter when the
millisecond did not move; each received timestamp is merged in, so causally later messages carry
later stamps across processes. One clock is shared by all envoys of a connection
(:func:`clock_for`). A peer whose clock runs further ahead than ``max_drift`` is refused (AIO
answers such a request 503).
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from ._errors import AioError, ErrorKind

MAX_COUNTER = 99_999
DEFAULT_MAX_DRIFT = 60.0
"""Seconds a peer's clock may run ahead of ours before its timestamps are refused."""

_FORMAT = re.compile(r"^(\d{15}):(\d{5}):(.+)$")


@dataclass(frozen=True, slots=True, order=True)
class Timestamp:
    """One HLC reading: milliseconds since the epoch, a counter, and the node that made it."""

    millis: int
    counter: int
    node_id: str

    def encode(self) -> str:
        """The ``__ts`` wire form."""
        return f"{self.millis:015d}:{self.counter:05d}:{self.node_id}"

    @staticmethod
    def decode(text: str, header: str = "__ts") -> Timestamp:
        """Parse the wire form; an ``invalid header`` :class:`AioError` when malformed."""
        match = _FORMAT.match(text)
        if match is None:
            raise AioError(
                ErrorKind.INVALID_HEADER,
                f"{header}: not a hybrid logical clock timestamp, got {text!r}",
                is_shallow=False,
                header_name=header,
                header_value=text,
            )
        return Timestamp(int(match.group(1)), int(match.group(2)), match.group(3))


class HybridLogicalClock:
    """A thread-safe HLC for one node; ``wall_ms`` is injectable so tests freeze time."""

    def __init__(
        self,
        node_id: str,
        *,
        max_drift: float = DEFAULT_MAX_DRIFT,
        wall_ms: Callable[[], int] | None = None,
    ) -> None:
        self._node_id = node_id
        self._max_drift_ms = int(max_drift * 1000)
        self._wall_ms = wall_ms if wall_ms is not None else _wall_ms
        self._lock = threading.Lock()
        self._millis = 0
        self._counter = 0

    @property
    def node_id(self) -> str:
        """The node id in every timestamp this clock makes (the client id)."""
        return self._node_id

    def now(self) -> Timestamp:
        """A timestamp for a local event (sending a message): later than every earlier one."""
        with self._lock:
            wall = self._wall_ms()
            if wall > self._millis:
                self._millis, self._counter = wall, 0
            else:
                self._bump()
            return Timestamp(self._millis, self._counter, self._node_id)

    def update(self, other: Timestamp) -> None:
        """Merge a received timestamp; an ``invalid state`` :class:`AioError` if it runs more
        than ``max_drift`` ahead of the wall clock (the clock is then left unchanged)."""
        with self._lock:
            wall = self._wall_ms()
            if other.millis - wall > self._max_drift_ms:
                raise AioError(
                    ErrorKind.INVALID_STATE,
                    f"a peer's clock ({other.encode()}) runs more than "
                    f"{self._max_drift_ms} ms ahead of ours",
                    is_shallow=False,
                    property_name="MaxClockDrift",
                )
            latest = max(wall, self._millis, other.millis)
            if latest == self._millis == other.millis:
                self._counter = max(self._counter, other.counter)
                self._bump()
            elif latest == self._millis:
                self._bump()
            elif latest == other.millis:
                self._millis, self._counter = latest, other.counter
                self._bump()
            else:
                self._millis, self._counter = latest, 0

    def _bump(self) -> None:
        if self._counter >= MAX_COUNTER:
            raise AioError(
                ErrorKind.INTERNAL_LOGIC_ERROR,
                "the hybrid logical clock's counter overflowed",
                is_shallow=False,
                property_name="Counter",
            )
        self._counter += 1


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


_CLOCKS: weakref.WeakKeyDictionary[object, HybridLogicalClock] = weakref.WeakKeyDictionary()
_CLOCKS_LOCK = threading.Lock()


def clock_for(conn: object, node_id: str) -> HybridLogicalClock:
    """The one clock shared by every envoy on ``conn`` (created on first use)."""
    with _CLOCKS_LOCK:
        clock = _CLOCKS.get(conn)
        if clock is None:
            clock = _CLOCKS[conn] = HybridLogicalClock(node_id)
        return clock
