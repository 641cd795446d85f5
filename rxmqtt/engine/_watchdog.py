"""The keep-alive watchdog: paho's housekeeping on a timer, and the verdict on a silent link."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol


class _Timer(Protocol):
    def cancel(self) -> None: ...


CallLater = Callable[[float, Callable[[], None]], _Timer]
"""``loop.call_later`` without its extra arguments."""


def ping_timeout(keep_alive: float) -> float:
    """How long a PINGRESP may take: paho pings after ``keep_alive`` of silence, so a link
    silent for ``keep_alive + ping_timeout`` is dead (raw paho waits ``2 * keep_alive``).

    >>> ping_timeout(10), ping_timeout(600)
    (4.0, 30.0)
    """
    return min(0.4 * keep_alive, 30.0)


def tick_interval(keep_alive: float) -> float:
    """How often the watchdog looks: a twentieth of the keep-alive, between 50 ms and 1 s.

    >>> tick_interval(60), tick_interval(2), tick_interval(0)
    (1.0, 0.1, 1.0)
    """
    return max(0.05, min(1.0, keep_alive / 20)) if keep_alive else 1.0


MIN_WAKE = 0.01
"""The shortest sleep between two wake-ups (a deadline met a hair early is not a busy loop)."""


class KeepAliveWatchdog:
    """Runs ``housekeeping`` (paho's ``loop_misc``: PINGREQ when due) while armed, and calls
    ``dead(silent_for, keep_alive)`` once when nothing arrived from the broker for
    ``keep_alive + ping_timeout`` seconds. ``heard()`` is called on every inbound byte.

    With ``housekeeping_due`` (seconds until the housekeeping next has something to do,
    ``math.inf`` for never) it wakes only at the next deadline, the PINGREQ or the verdict: an
    idle link costs about two wake-ups per keep-alive period instead of twenty, which is what a
    thousand idle connections in one process spend their CPU on. Without it, it ticks every
    :func:`tick_interval`."""

    def __init__(
        self,
        call_later: CallLater,
        clock: Callable[[], float],
        housekeeping: Callable[[], object],
        dead: Callable[[float, float], None],
        housekeeping_due: Callable[[], float] | None = None,
        ping_sent_at: Callable[[], float] | None = None,
    ) -> None:
        self._call_later = call_later
        self._clock = clock
        self._housekeeping = housekeeping
        self._housekeeping_due = housekeeping_due
        self._dead = dead
        self._ping_sent_at = ping_sent_at
        self._timer: _Timer | None = None
        self._watch = 0
        """Counts start()/stop() calls: a tick from an earlier watch does nothing."""
        self._keep_alive = 0.0
        self._last_inbound = 0.0

    def heard(self) -> None:
        """The broker sent something: the link is alive now."""
        self._last_inbound = self._clock()

    def start(self, keep_alive: float) -> None:
        """Watch a link that was just accepted, with the keep-alive in force on it."""
        self.stop()
        self._keep_alive = keep_alive
        self.heard()
        self._arm()

    def stop(self) -> None:
        """Stop watching (the link ended or is being closed)."""
        self._watch += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        delay = self._next_wake()
        if delay == math.inf:
            return  # nothing to do until the link ends (no keep-alive on it)
        watch = self._watch
        self._timer = self._call_later(delay, lambda: self._tick(watch))

    def _next_wake(self) -> float:
        """Seconds until the next tick: the housekeeping's deadline or the verdict's, whichever
        comes first (or the fixed cadence when the housekeeping's is unknown)."""
        keep_alive = self._keep_alive
        due = self._housekeeping_due
        if due is None:
            return tick_interval(keep_alive)
        wake = due()
        if keep_alive > 0:
            # (just past the verdict's moment: the tick judges "silent for more than")
            wake = min(wake, self._verdict_at(keep_alive) - self._clock() + MIN_WAKE)
        return max(MIN_WAKE, wake)

    def _tick(self, watch: int) -> None:
        if watch != self._watch:
            return
        self._timer = None
        self._housekeeping()
        if watch != self._watch:
            return  # housekeeping ended the link (stop() or start() ran meanwhile)
        keep_alive = self._keep_alive
        now = self._clock()
        if keep_alive > 0 and now > self._verdict_at(keep_alive):
            self._dead(now - self._last_inbound, keep_alive)
            return
        self._arm()

    def _verdict_at(self, keep_alive: float) -> float:
        """When the link is dead if nothing arrives before: ``keep_alive + ping_timeout`` of
        silence, and never before the PINGREQ had its ``ping_timeout`` to be answered (a loop
        too busy to run the PINGREQ's timer on time must not turn its lateness into a dead
        link: a thousand connections connecting at once on a loaded machine did)."""
        timeout = ping_timeout(keep_alive)
        verdict_at = self._last_inbound + keep_alive + timeout
        sent_at = self._ping_sent_at() if self._ping_sent_at is not None else 0.0
        return max(verdict_at, sent_at + timeout) if sent_at else verdict_at
