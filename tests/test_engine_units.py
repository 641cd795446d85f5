"""The engine's small pure units, in virtual time: the phase table and the keep-alive watchdog
(plus the doctests of the shared argument checks)."""

from __future__ import annotations

import doctest
import heapq
import itertools
from collections.abc import Callable

import pytest

from rxmqtt import _checks
from rxmqtt.engine import _phase, _watchdog
from rxmqtt.engine._phase import TRANSITIONS, Phase, PhaseError, checked
from rxmqtt.engine._watchdog import KeepAliveWatchdog, ping_timeout


@pytest.mark.parametrize("module", [_phase, _watchdog, _checks])
def test_docstring_examples(module: object) -> None:
    failures, tried = doctest.testmod(module)  # type: ignore[arg-type]
    assert tried > 0
    assert failures == 0


@pytest.mark.parametrize(("current", "new"), list(itertools.product(Phase, Phase)))
def test_the_table_is_the_only_way_between_phases(current: Phase, new: Phase) -> None:
    if new in TRANSITIONS[current]:
        assert checked(current, new) is new
    else:
        with pytest.raises(PhaseError, match=f"{current.value} -> {new.value}"):
            checked(current, new)


def test_every_phase_is_reachable_and_returns_to_idle() -> None:
    """One attempt's life: every phase can be reached from IDLE, and every one can end."""
    reachable, frontier = {Phase.IDLE}, [Phase.IDLE]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert reachable == set(Phase)
    assert all(Phase.IDLE in TRANSITIONS[p] for p in Phase if p is not Phase.IDLE)


class _VirtualLoop:
    """call_later and a clock, advanced by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, _Timer]] = []
        self._ids = itertools.count()

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(callback)
        heapq.heappush(self._timers, (self.now + delay, next(self._ids), timer))
        return timer

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self._timers and self._timers[0][0] <= end:
            at, _, timer = heapq.heappop(self._timers)
            self.now = at
            if not timer.cancelled:
                timer.callback()
        self.now = end


class _Timer:
    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def _watchdog_on(loop: _VirtualLoop) -> tuple[KeepAliveWatchdog, list[float], list[int]]:
    dead: list[float] = []
    ticks: list[int] = []
    dog = KeepAliveWatchdog(
        loop.call_later,
        lambda: loop.now,
        lambda: ticks.append(1),
        lambda silent_for, _keep_alive: dead.append(silent_for),
    )
    return dog, dead, ticks


def test_a_silent_link_is_declared_dead_once_after_keep_alive_plus_ping_timeout() -> None:
    loop = _VirtualLoop()
    dog, dead, ticks = _watchdog_on(loop)
    dog.start(10)
    loop.advance(10 + ping_timeout(10) - 0.1)
    assert dead == []
    assert ticks, "paho's housekeeping runs on every tick"
    loop.advance(1.0)
    assert len(dead) == 1
    assert dead[0] > 10 + ping_timeout(10)
    loop.advance(60)
    assert len(dead) == 1, "declared once, then the watchdog stops"


def test_inbound_traffic_keeps_the_link_alive() -> None:
    loop = _VirtualLoop()
    dog, dead, _ = _watchdog_on(loop)
    dog.start(10)
    for _ in range(10):
        loop.advance(9)
        dog.heard()
    assert dead == []


def test_a_stopped_watchdog_neither_ticks_nor_judges() -> None:
    loop = _VirtualLoop()
    dog, dead, ticks = _watchdog_on(loop)
    dog.start(2)
    loop.advance(0.5)
    dog.stop()
    before = len(ticks)
    loop.advance(60)
    assert (dead, len(ticks)) == ([], before)


def test_housekeeping_that_ends_the_link_stops_the_watch() -> None:
    """paho's loop_misc may drop the link (and the engine stops the watchdog from inside it):
    that tick must not re-arm or judge."""
    loop = _VirtualLoop()
    dead: list[float] = []
    calls: list[int] = []

    def housekeeping() -> None:
        calls.append(1)
        dog.stop()

    dog = KeepAliveWatchdog(
        loop.call_later, lambda: loop.now, housekeeping, lambda s, _: dead.append(s)
    )
    dog.start(1)
    loop.advance(30)
    assert (len(calls), dead) == (1, [])


def test_zero_keep_alive_never_judges() -> None:
    loop = _VirtualLoop()
    dog, dead, ticks = _watchdog_on(loop)
    dog.start(0)
    loop.advance(3600)
    assert dead == []
    assert len(ticks) > 100
