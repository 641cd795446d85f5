"""The marble cases the documentation draws, and the code that plays them in virtual time.

One source of truth for the diagrams on the Policies page:

- ``docs/gen_site.py`` (the MkDocs hook) plays every case with :func:`play` and draws the trace;
- ``tests/test_docs_snippets.py`` plays every case too and fails if the result differs from the
  case's ``expected`` marble, and checks that each case that names a test in
  ``tests/test_operators.py`` uses exactly the marble strings that test asserts.

So a diagram in the docs is always a run of the real operator, and it cannot drift from the
operator tests. A marble string has one character per tick (one virtual second): ``-`` nothing,
a letter an item, ``#`` an error, ``|`` completion.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import reactivex
from reactivex import operators as ops
from reactivex.notification import OnCompleted, OnError, OnNext
from reactivex.observable.marbles import parse
from reactivex.testing import ReactiveTest, TestScheduler

from rxmqtt.operators import retry_when, retry_with_backoff
from rxmqtt.policies import Backoff, Jitter

CREATED, SUBSCRIBED, DISPOSED = 100.0, 200.0, 1000.0
"""When :func:`play` creates, subscribes and disposes (``TestScheduler.start``'s defaults)."""

LINEAR = Backoff(initial=1, maximum=8, multiplier=2, jitter=Jitter.NONE)  # 1, 2, 4, 8, 8, ...
"""The backoff of the ``retry_with_backoff`` cases (the same value ``tests/test_operators.py``
calls ``LINEAR``)."""


def namespace() -> dict[str, Any]:
    """What a case's ``operator`` expression may use."""
    return {
        "reactivex": reactivex,
        "ops": ops,
        "retry_when": retry_when,
        "retry_with_backoff": retry_with_backoff,
        "Backoff": Backoff,
        "Jitter": Jitter,
        "LINEAR": LINEAR,
        "stop": ValueError("stop"),
    }


@dataclass(frozen=True)
class MarbleCase:
    """One diagram: an operator applied to a source whose n-th subscription plays ``sources[n]``
    (the last one repeats), and the marble the result must produce."""

    key: str
    """Where the diagram goes: ``<!-- generated: marble KEY -->`` in a page."""
    title: str
    operator: str
    """A Python expression building the operator (evaluated with :func:`namespace`); the docs
    show exactly this text."""
    sources: tuple[str, ...]
    expected: str
    error: str = "Exception"
    """The class name of the result's error, when ``expected`` ends in ``#``."""
    test: str | None = None
    """The test in ``tests/test_operators.py`` that asserts these same marble strings."""
    caption: str = ""


CASES: tuple[MarbleCase, ...] = (
    MarbleCase(
        key="retry_when-delayed",
        title="retry_when: retry two ticks after each error, three times",
        operator="retry_when(lambda errors: errors.pipe(ops.delay(2), ops.take(3)))",
        sources=("-a-#",),
        expected="-a----a----a---|",
        test="test_retry_when_resubscribes_when_the_notifier_emits",
        caption="Each error goes to `errors`; each item the notifier emits resubscribes the "
        "source. `take(3)` completes the notifier with its third item, which completes the "
        "result.",
    ),
    MarbleCase(
        key="retry_when-source-completes",
        title="retry_when: the source's completion completes the result",
        operator="retry_when(lambda errors: errors)",
        sources=("-a#", "--b|"),
        expected="-a--b|",
        test="test_retry_when_source_completion_completes",
        caption="Retrying at once (the notifier is the errors themselves) until a subscription "
        "completes.",
    ),
    MarbleCase(
        key="retry_when-notifier-completes",
        title="retry_when: the notifier's completion completes the result",
        operator="retry_when(lambda errors: errors.pipe(ops.take(0)))",
        sources=("-a--#",),
        expected="-a--|",
        test="test_retry_when_notifier_completion_completes",
        caption="A notifier that completes instead of emitting turns the error into completion.",
    ),
    MarbleCase(
        key="retry_when-notifier-errors",
        title="retry_when: the notifier's error is the result's error",
        operator="retry_when(lambda errors: errors.pipe("
        "ops.flat_map(lambda e: reactivex.throw(stop))))",
        sources=("-a-#",),
        expected="-a-#",
        error="ValueError",
        test="test_retry_when_notifier_error_is_the_result_error",
        caption="A notifier that errors ends the result with its own error (here `stop`).",
    ),
    MarbleCase(
        key="retry_with_backoff-recovers",
        title="retry_with_backoff: waits 1, then 2 ticks, and the third subscription succeeds",
        operator="retry_with_backoff(LINEAR, max_attempts=3)",
        sources=("-a#", "-b#", "-c|"),
        expected="-a--b---c|",
        test="test_items_pass_through_and_success_completes",
        caption="`LINEAR` is `Backoff(initial=1, maximum=8, multiplier=2, jitter=Jitter.NONE)`: "
        "delays 1, 2, 4, 8, 8, ... Items pass through; the first completion completes.",
    ),
    MarbleCase(
        key="retry_with_backoff-exhausted",
        title="retry_with_backoff: five retries, then RetriesExhausted",
        operator="retry_with_backoff(LINEAR, max_attempts=5)",
        sources=("-#",),
        expected="-----------------------------#",
        error="RetriesExhausted",
        caption="The waits grow 1, 2, 4, 8 and stay at the cap, 8. After the fifth retry "
        "fails the result errors with `RetriesExhausted(attempts=5, last_error=...)`, at once.",
    ),
    MarbleCase(
        key="retry_with_backoff-no-retries",
        title="retry_with_backoff: max_attempts=0 gives up at the first error",
        operator="retry_with_backoff(LINEAR, max_attempts=0)",
        sources=("--#",),
        expected="--#",
        error="RetriesExhausted",
        test="test_max_attempts_zero_gives_up_at_the_first_error",
    ),
    MarbleCase(
        key="retry_with_backoff-reset",
        title="retry_with_backoff: reset_after=10 restarts the backoff after a stable run",
        operator="retry_with_backoff(Backoff(1, 100, jitter=Jitter.NONE), max_attempts=3, "
        "reset_after=10)",
        sources=("-#", "-#", "-a-----------#", "-#"),
        expected="------a---------------------#",
        error="RetriesExhausted",
        caption="The third subscription emitted `a` and stayed up 12 ticks (from its first "
        "item to its error) before failing: that is `>= reset_after`, so the next wait is 1 "
        "again and the attempt count restarts. This is how a connection that was up for a "
        "while reconnects quickly, while one that flaps keeps backing off.",
    ),
)


@dataclass(frozen=True)
class Event:
    """One notification at ``time`` ticks after the subscription: ``kind`` is ``N``, ``E`` or
    ``C``; ``value`` is the item (``N``) or the error's class name (``E``)."""

    time: float
    kind: str
    value: Any = None


@dataclass(frozen=True)
class SourceRun:
    """One subscription to the source: the marble it played, from ``start`` to ``end``."""

    marble: str
    start: float
    end: float | None
    """``None`` while still subscribed when the run ended."""
    events: tuple[Event, ...] = ()
    """What it emitted (times relative to the whole run, not to ``start``)."""


@dataclass(frozen=True)
class Trace:
    case: MarbleCase
    runs: tuple[SourceRun, ...]
    result: tuple[Event, ...]
    errors: tuple[BaseException, ...] = field(default=(), compare=False)
    """The result's error objects (for checks beyond the class name)."""


def marble_events(marble: str, shift: float = 0.0, error: str = "Exception") -> list[Event]:
    """The events a marble string describes (times in ticks, shifted by ``shift``)."""
    events = []
    for time, note in parse(marble, timespan=1, time_shift=shift):
        if isinstance(note, OnNext):
            events.append(Event(float(time), "N", note.value))
        elif isinstance(note, OnError):
            events.append(Event(float(time), "E", error))
        else:
            events.append(Event(float(time), "C"))
    return events


def _event(time: float, note: Any) -> Event:
    if isinstance(note, OnNext):
        return Event(time, "N", note.value)
    if isinstance(note, OnError):
        return Event(time, "E", type(note.exception).__name__)
    assert isinstance(note, OnCompleted)
    return Event(time, "C")


def play(case: MarbleCase) -> Trace:
    """Run ``case`` on a ``TestScheduler``: what each subscription did, and the result."""
    scheduler = TestScheduler()
    colds: list[tuple[str, Any]] = []

    def subscribe_next(_: Any) -> Any:
        marble = case.sources[min(len(colds), len(case.sources) - 1)]
        records = [
            ReactiveTest.on_next(int(t), n.value)
            if isinstance(n, OnNext)
            else ReactiveTest.on_error(int(t), n.exception)
            if isinstance(n, OnError)
            else ReactiveTest.on_completed(int(t))
            for t, n in parse(marble, timespan=1)
        ]
        cold = scheduler.create_cold_observable(*records)
        colds.append((marble, cold))
        return cold

    operator = eval(case.operator, namespace())  # the text the docs show, run as is
    source = reactivex.defer(subscribe_next)
    observer = scheduler.start(
        lambda: source.pipe(operator), created=CREATED, subscribed=SUBSCRIBED, disposed=DISPOSED
    )
    runs = []
    for marble, cold in colds:
        for sub in cold.subscriptions:
            start = float(sub.subscribe) - SUBSCRIBED
            end = None if sub.unsubscribe >= DISPOSED else float(sub.unsubscribe) - SUBSCRIBED
            played = tuple(
                e for e in marble_events(marble, shift=start) if end is None or e.time <= end
            )
            runs.append(SourceRun(marble, start, end, played))
    result = tuple(_event(float(m.time) - SUBSCRIBED, m.value) for m in observer.messages)
    errors = tuple(m.value.exception for m in observer.messages if isinstance(m.value, OnError))
    return Trace(case, tuple(runs), result, errors)


def expected_events(case: MarbleCase) -> list[Event]:
    return marble_events(case.expected, error=case.error)


# ----------------------------------------------------------------------------------- jitter

JITTER_SEED = 7
JITTER_RETRIES = 8
JITTER_BACKOFF = dict(initial=1.0, maximum=16.0, multiplier=2.0)
"""The backoff drawn for each jitter mode: ``Backoff(initial=1, maximum=16, multiplier=2)``."""


@dataclass(frozen=True)
class JitterStep:
    """Retry ``attempt``: waited ``delay`` seconds (drawn from ``[low, high]``) from ``at``."""

    attempt: int
    at: float
    delay: float
    low: float
    high: float
    base: float


@dataclass(frozen=True)
class JitterTrace:
    jitter: Jitter
    steps: tuple[JitterStep, ...]
    subscribed_at: tuple[float, ...]
    """When each subscription (the first one and every retry) started."""


def play_jitter(jitter: Jitter) -> JitterTrace:
    """``retry_with_backoff`` with ``Backoff(1, 16, 2, jitter)`` and ``random.Random(7)`` on a
    source that fails as soon as it is subscribed, in virtual time."""
    backoff = Backoff(jitter=jitter, **JITTER_BACKOFF)
    scheduler = TestScheduler()
    source = scheduler.create_cold_observable(ReactiveTest.on_error(0, OSError("down")))
    seen: list[tuple[float, int, float]] = []
    operator = retry_with_backoff(
        backoff,
        max_attempts=JITTER_RETRIES,
        rng=random.Random(JITTER_SEED),
        on_retry=lambda a: seen.append((scheduler.clock - SUBSCRIBED, a.attempt, a.delay)),
    )
    scheduler.start(lambda: source.pipe(operator), disposed=SUBSCRIBED + 10_000)
    bases = list(islice(backoff.base_delays(), JITTER_RETRIES))
    steps = []
    previous = backoff.initial
    for (at, attempt, delay), base in zip(seen, bases, strict=True):
        if jitter is Jitter.NONE:
            low, high = base, base
        elif jitter is Jitter.FULL:
            low, high = 0.0, base
        elif jitter is Jitter.EQUAL:
            low, high = base / 2, base
        else:
            low, high = backoff.initial, min(backoff.maximum, previous * 3)
        steps.append(JitterStep(attempt, at, delay, low, high, base))
        previous = delay
    starts = tuple(float(s.subscribe) - SUBSCRIBED for s in source.subscriptions)
    return JitterTrace(jitter, tuple(steps), starts)
