"""The engine's small pure units, in virtual time: the phase table and the keep-alive watchdog
(plus the doctests of the shared argument checks)."""

from __future__ import annotations

import doctest
import heapq
import itertools
import logging
import math
from collections.abc import Callable

import pytest

from rxmqtt import ConnectionSettings, _checks
from rxmqtt.engine import _phase, _watchdog
from rxmqtt.engine._paho_link import PahoLink
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
            self.now = max(self.now, at)  # (a timer overdue after a stall runs late)
            if not timer.cancelled:
                timer.callback()
        self.now = end

    def stall(self, seconds: float) -> None:
        """The loop is busy elsewhere for ``seconds``: no timer runs meanwhile."""
        self.now += seconds


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


class _PahoKeepAlive:
    """What paho's keep-alive check does, in virtual time: a PINGREQ once ``keep_alive`` passed
    without a packet out, answered (``answer``) a moment later by the broker."""

    def __init__(self, loop: _VirtualLoop, keep_alive: float, answer: bool = True) -> None:
        self.loop = loop
        self.keep_alive = keep_alive
        self.answer = answer
        self.last_out = loop.now
        self.pings: list[float] = []
        self.dog: KeepAliveWatchdog | None = None

    def due(self) -> float:
        return self.last_out + self.keep_alive - self.loop.now

    def housekeeping(self) -> None:
        if self.due() <= 0:
            self.pings.append(self.loop.now)
            self.last_out = self.loop.now
            if self.answer:
                assert self.dog is not None
                self.loop.call_later(0.001, self.dog.heard)


def _deadline_watchdog(
    loop: _VirtualLoop, keep_alive: float, answer: bool = True
) -> tuple[KeepAliveWatchdog, _PahoKeepAlive, list[float], list[int]]:
    paho = _PahoKeepAlive(loop, keep_alive, answer)
    dead: list[float] = []
    wakes: list[int] = []

    def housekeeping() -> None:
        wakes.append(1)
        paho.housekeeping()

    dog = KeepAliveWatchdog(
        loop.call_later,
        lambda: loop.now,
        housekeeping,
        lambda silent_for, _keep_alive: dead.append(silent_for),
        housekeeping_due=paho.due,
    )
    paho.dog = dog
    return dog, paho, dead, wakes


def test_an_idle_link_wakes_only_for_its_pings_and_their_answers() -> None:
    """Twenty ticks per keep-alive were what a thousand idle connections spent their CPU on:
    with the housekeeping's deadline known, an idle link wakes for the PINGREQ and once to see
    that it was answered."""
    loop = _VirtualLoop()
    dog, paho, dead, wakes = _deadline_watchdog(loop, 10)
    dog.start(10)
    loop.advance(100)
    assert dead == []
    assert paho.pings == pytest.approx([10.0 * n for n in range(1, 11)], abs=0.02)
    assert len(wakes) <= 2 * 10 + 1, f"{len(wakes)} wake-ups in 10 keep-alive periods"


def test_with_deadlines_a_silent_link_is_declared_dead_on_time() -> None:
    loop = _VirtualLoop()
    dog, paho, dead, wakes = _deadline_watchdog(loop, 10, answer=False)
    dog.start(10)
    loop.advance(60)
    assert paho.pings == pytest.approx([10.0], abs=0.02), "one PINGREQ, never answered"
    assert len(dead) == 1
    assert 10 + ping_timeout(10) < dead[0] <= 10 + ping_timeout(10) + 0.05
    assert len(wakes) <= 3


@pytest.mark.parametrize("deadlines", [False, True], ids=["fixed ticks", "deadlines"])
def test_inbound_traffic_keeps_the_link_alive(deadlines: bool) -> None:
    loop = _VirtualLoop()
    if deadlines:  # (its PINGREQs go unanswered: only the traffic keeps it alive)
        dog, _paho, dead, _ = _deadline_watchdog(loop, 10, answer=False)
    else:
        dog, dead, _ = _watchdog_on(loop)
    dog.start(10)
    for _ in range(20):
        loop.advance(9)
        dog.heard()
    assert dead == []


def test_no_keep_alive_and_nothing_due_keeps_no_timer() -> None:
    loop = _VirtualLoop()
    wakes: list[int] = []
    dog = KeepAliveWatchdog(
        loop.call_later,
        lambda: loop.now,
        lambda: wakes.append(1),
        lambda *_: None,
        housekeeping_due=lambda: math.inf,
    )
    dog.start(0)
    loop.advance(3600)
    assert wakes == []


class _BrokenSockets:
    """Socket hooks whose every call fails (a bug in the pump)."""

    def opened(self, sock: object) -> None:
        raise RuntimeError("opened: broken")

    def closed(self, sock: object) -> None:
        raise RuntimeError("closed: broken")

    def want_write(self, sock: object) -> None:
        raise RuntimeError("want_write: broken")

    def wrote_all(self, sock: object) -> None:
        raise RuntimeError("wrote_all: broken")


def test_a_failing_paho_callback_is_logged_with_its_name(caplog: pytest.LogCaptureFixture) -> None:
    """paho swallows what its callbacks raise: the adapter logs each with its traceback."""
    link = PahoLink(ConnectionSettings(host="127.0.0.1", client_id="logged"))
    link.wire(events=lambda _event: None, sockets=_BrokenSockets())
    client = link._client
    with caplog.at_level(logging.ERROR, logger="rxmqtt.engine"):
        client.on_socket_open(client, None, "sock")
        client.on_socket_register_write(client, None, "sock")
    failures = [(r.getMessage(), str(r.exc_info[1]) if r.exc_info else "") for r in caplog.records]
    assert failures == [
        ("rxmqtt engine: _on_socket_open failed", "opened: broken"),
        ("rxmqtt engine: _on_socket_register_write failed", "want_write: broken"),
    ]


def _late_ping_watchdog(
    loop: _VirtualLoop,
) -> tuple[KeepAliveWatchdog, _PahoKeepAlive, list[float]]:
    paho = _PahoKeepAlive(loop, 10, answer=False)
    dead: list[float] = []
    dog = KeepAliveWatchdog(
        loop.call_later,
        lambda: loop.now,
        paho.housekeeping,
        lambda silent_for, _keep_alive: dead.append(silent_for),
        housekeeping_due=paho.due,
        ping_sent_at=lambda: paho.pings[-1] if paho.pings else 0.0,
    )
    paho.dog = dog
    dog.start(10)
    loop.stall(13.9)  # the PINGREQ's timer was due at 10: the loop was busy elsewhere
    loop.advance(0)
    assert paho.pings == pytest.approx([13.9]), "the PINGREQ went out late"
    return dog, paho, dead


def test_a_ping_sent_late_by_a_busy_loop_still_has_its_ping_timeout() -> None:
    """A thousand connections connecting at once on a loaded machine delayed PINGREQ timers by
    seconds, and the silence verdict (keep_alive + ping_timeout after the last byte) then
    came before the late PINGREQ could be answered: links declared dead that were alive."""
    loop = _VirtualLoop()
    dog, _paho, dead = _late_ping_watchdog(loop)
    loop.advance(ping_timeout(10) - 0.1)
    dog.heard()  # the PINGRESP, within ping_timeout of the PINGREQ
    loop.advance(1)
    assert dead == []


def test_a_late_ping_left_unanswered_is_still_a_dead_link() -> None:
    loop = _VirtualLoop()
    _dog, _paho, dead = _late_ping_watchdog(loop)
    loop.advance(ping_timeout(10) + 0.1)
    assert len(dead) == 1
    assert dead[0] == pytest.approx(13.9 + ping_timeout(10), abs=0.05)
