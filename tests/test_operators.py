"""retry_when and retry_with_backoff, in virtual time (TestScheduler / marbles)."""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import islice
from typing import Any

import pytest
import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import Disposable
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.marbles import marbles_testing
from reactivex.testing.reactivetest import OnErrorPredicate
from reactivex.testing.recorded import Recorded
from reactivex.testing.subscription import Subscription

from rxmqtt.errors import RetriesExhausted
from rxmqtt.operators import RetryAttempt, retry_when, retry_with_backoff
from rxmqtt.policies import Backoff, Jitter

on_next = ReactiveTest.on_next
on_error = ReactiveTest.on_error
on_completed = ReactiveTest.on_completed


class Boom(Exception):
    pass


@contextmanager
def marbles() -> Iterator[Any]:
    """``marbles_testing`` with one tick per character (and without its loose typing)."""
    with marbles_testing(timespan=1) as context:
        yield context


def on_error_where(ticks: int, predicate: Callable[[Exception], bool]) -> Recorded[Any]:
    return Recorded(ticks, OnErrorPredicate(predicate))


def sequence(*sources: Observable[Any]) -> tuple[Observable[Any], list[int]]:
    """An observable whose n-th subscription subscribes to ``sources[n]`` (the last one repeats)."""
    count: list[int] = []

    def factory(_: abc.SchedulerBase) -> Observable[Any]:
        count.append(1)
        return sources[min(len(count), len(sources)) - 1]

    return reactivex.defer(factory), count


def frame_depth() -> int:
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back  # type: ignore[assignment]
    return depth


# --- retry_when ---------------------------------------------------------------------------------


def test_retry_when_resubscribes_when_the_notifier_emits() -> None:
    with marbles() as (start, cold, _hot, exp):
        source = cold("-a-#")
        result = source.pipe(retry_when(lambda errors: errors.pipe(ops.delay(2), ops.take(3))))
        # errors at 3, 8, 13; resubscribed at 5, 10, 15; take(3) completes at 15.
        assert start(result) == exp("-a----a----a---|")


def test_retry_when_marble_in_docstring_subscriptions() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_cold_observable(on_next(1, "a"), on_error(3, Boom()))
    result = source.pipe(retry_when(lambda errors: errors.pipe(ops.delay(2), ops.take(3))))
    observer = scheduler.start(lambda: result)
    assert observer.messages == [
        on_next(201, "a"),
        on_next(206, "a"),
        on_next(211, "a"),
        on_completed(215),
    ]
    assert source.subscriptions == [
        Subscription(200, 203),
        Subscription(205, 208),
        Subscription(210, 213),
        Subscription(215, 215),
    ]


def test_retry_when_source_completion_completes() -> None:
    with marbles() as (start, cold, _hot, exp):
        first = cold("-a#")
        second = cold("--b|")
        source, _ = sequence(first, second)
        result = source.pipe(retry_when(lambda errors: errors))
        assert start(result) == exp("-a--b|")


def test_retry_when_notifier_completion_completes() -> None:
    with marbles() as (start, cold, _hot, exp):
        result = cold("-a--#").pipe(retry_when(lambda errors: errors.pipe(ops.take(0))))
        assert start(result) == exp("-a--|")


def test_retry_when_notifier_completing_later_completes() -> None:
    with marbles() as (start, cold, _hot, exp):
        notifier = cold("------|")  # never emits; completes 6 ticks after the first error
        result = cold("-a-#").pipe(retry_when(lambda errors: notifier))
        assert start(result) == exp("-a-------|")


def test_retry_when_notifier_error_is_the_result_error() -> None:
    stop = ValueError("stop")
    with marbles() as (start, cold, _hot, exp):
        result = cold("-a-#").pipe(
            retry_when(lambda errors: errors.pipe(ops.flat_map(lambda e: reactivex.throw(stop))))
        )
        assert start(result) == exp("-a-#", error=stop)


def test_retry_when_passes_errors_and_calls_notifier_once_per_subscription() -> None:
    scheduler = TestScheduler()
    first, second = Boom("1"), Boom("2")
    source, _ = sequence(
        scheduler.create_cold_observable(on_error(1, first)),
        scheduler.create_cold_observable(on_error(2, second)),
        scheduler.create_cold_observable(on_next(1, "x"), on_completed(2)),
    )
    calls: list[int] = []
    seen: list[Exception] = []

    def notifier(errors: Observable[Exception]) -> Observable[Any]:
        calls.append(1)
        return errors.pipe(ops.do_action(seen.append))

    result = source.pipe(retry_when(notifier))
    observer = scheduler.start(lambda: result)
    assert observer.messages == [on_next(204, "x"), on_completed(205)]
    assert seen == [first, second]
    assert calls == [1]
    # A second subscription gets its own notifier call (lazily, on its first error).
    source2, _ = sequence(reactivex.throw(first), reactivex.of(1))
    sub = source2.pipe(retry_when(notifier))
    assert sub.pipe(ops.to_list()).run() == [1]
    assert calls == [1, 1]


def test_retry_when_notifier_is_called_lazily() -> None:
    calls: list[int] = []

    def notifier(errors: Observable[Exception]) -> Observable[Any]:
        calls.append(1)
        return errors

    assert reactivex.of(1, 2).pipe(retry_when(notifier), ops.to_list()).run() == [1, 2]
    assert calls == []


def test_retry_when_dispose_unsubscribes_source_and_notifier() -> None:
    scheduler = TestScheduler()
    failing = scheduler.create_cold_observable(on_error(2, Boom()))
    alive = scheduler.create_cold_observable(on_next(3, "a"))
    notifier = scheduler.create_hot_observable(on_next(250, "retry"), on_next(1100, "late"))
    source, count = sequence(failing, alive)

    observer = scheduler.start(lambda: source.pipe(retry_when(lambda errors: notifier)))
    assert observer.messages == [on_next(253, "a")]
    assert failing.subscriptions == [Subscription(200, 202)]
    assert alive.subscriptions == [Subscription(250, 1000)]
    assert notifier.subscriptions == [Subscription(202, 1000)]
    assert len(count) == 2  # the "late" signal after dispose resubscribed nothing


def test_retry_when_notifier_emission_replaces_a_live_source_subscription() -> None:
    scheduler = TestScheduler()
    alive = scheduler.create_cold_observable(on_next(5, "a"))
    notifier = scheduler.create_hot_observable(on_next(210, "go"))
    source, _ = sequence(scheduler.create_cold_observable(on_error(1, Boom())), alive)
    observer = scheduler.start(lambda: source.pipe(retry_when(lambda errors: notifier)))
    # Resubscribed at 210; the hot notifier emits nothing else, the live subscription stays.
    assert observer.messages == [on_next(215, "a")]
    assert alive.subscriptions == [Subscription(210, 1000)]


def test_retry_when_notifier_raising_is_the_result_error() -> None:
    def notifier(errors: Observable[Exception]) -> Observable[Any]:
        raise KeyError("bad notifier")

    errors: list[Exception] = []
    reactivex.throw(Boom()).pipe(retry_when(notifier)).subscribe(on_error=errors.append)
    assert len(errors) == 1
    assert isinstance(errors[0], KeyError)


def test_retry_when_10000_synchronous_retries_do_not_grow_the_stack() -> None:
    attempts = 0
    depths: list[int] = []

    def flaky(
        observer: abc.ObserverBase[int], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        nonlocal attempts
        attempts += 1
        if attempts in (10, 10_000):
            depths.append(frame_depth())
        if attempts < 10_000:
            observer.on_error(Boom(str(attempts)))
        else:
            observer.on_next(attempts)
            observer.on_completed()
        return Disposable()

    values: list[int] = []
    done: list[bool] = []
    reactivex.create(flaky).pipe(retry_when(lambda errors: errors)).subscribe(
        values.append, lambda e: pytest.fail(f"unexpected {e!r}"), lambda: done.append(True)
    )
    assert values == [10_000]
    assert done == [True]
    assert depths[0] == depths[1]


def test_retry_when_synchronous_notifier_with_immediate_completion() -> None:
    # The notifier emits (sync) and then completes (sync) inside the first on_error.
    values: list[Any] = []
    completed: list[bool] = []
    source, count = sequence(reactivex.throw(Boom()), reactivex.of("ok"))
    source.pipe(retry_when(lambda errors: errors.pipe(ops.take(1)))).subscribe(
        values.append, lambda e: pytest.fail(repr(e)), lambda: completed.append(True)
    )
    # The completion arrives while the failed subscription is still unwinding, so it wins:
    # the result completes and the pending resubscription is dropped (as in RxJS).
    assert len(count) == 1
    assert completed == [True]
    assert values == []


def test_retry_when_rejects_a_non_callable() -> None:
    with pytest.raises(TypeError, match=r"^notifier: must be callable"):
        retry_when(42)  # type: ignore[arg-type]


# --- retry_with_backoff -------------------------------------------------------------------------

LINEAR = Backoff(initial=1, maximum=8, multiplier=2, jitter=Jitter.NONE)  # 1, 2, 4, 8, 8, ...


def test_delays_follow_the_backoff_and_exhaustion_is_timed() -> None:
    scheduler = TestScheduler()
    error = Boom("down")
    source = scheduler.create_cold_observable(on_error(1, error))
    attempts: list[tuple[float, int, float]] = []

    def record(attempt: RetryAttempt) -> None:
        assert attempt.error is error
        attempts.append((scheduler.clock, attempt.attempt, attempt.delay))

    result = source.pipe(retry_with_backoff(LINEAR, max_attempts=5, on_retry=record))
    observer = scheduler.start(lambda: result)

    assert source.subscriptions == [
        Subscription(200, 201),
        Subscription(202, 203),  # +1
        Subscription(205, 206),  # +2
        Subscription(210, 211),  # +4
        Subscription(219, 220),  # +8
        Subscription(228, 229),  # +8 (capped)
    ]
    assert attempts == [(201, 1, 1), (203, 2, 2), (206, 3, 4), (211, 4, 8), (220, 5, 8)]
    assert len(observer.messages) == 1
    [message] = observer.messages
    assert message.time == 229
    exhausted = message.value.exception  # type: ignore[union-attr]
    assert isinstance(exhausted, RetriesExhausted)
    assert exhausted.attempts == 5
    assert exhausted.last_error is error


def test_items_pass_through_and_success_completes() -> None:
    with marbles() as (start, cold, _hot, exp):
        source, _ = sequence(cold("-a#"), cold("-b#"), cold("-c|"))
        result = source.pipe(retry_with_backoff(LINEAR, max_attempts=3))
        # a@1, err@2 +1 -> b@4, err@5 +2 -> c@8, done@9
        assert start(result) == exp("-a--b---c|")


def test_max_attempts_zero_gives_up_at_the_first_error() -> None:
    error = Boom()

    def exhausted(e: Exception) -> bool:
        return isinstance(e, RetriesExhausted) and e.attempts == 0 and e.last_error is error

    with marbles() as (start, cold, _hot, _exp):
        result = cold("--#", error=error).pipe(retry_with_backoff(LINEAR, max_attempts=0))
        assert [on_error_where(202, exhausted)] == start(result)


def test_non_retriable_error_stops_at_once_with_the_original_error() -> None:
    scheduler = TestScheduler()
    fatal = KeyError("fatal")
    source, count = sequence(
        scheduler.create_cold_observable(on_error(1, Boom("transient"))),
        scheduler.create_cold_observable(on_next(1, "a"), on_error(2, fatal)),
    )
    result = source.pipe(
        retry_with_backoff(LINEAR, is_retriable=lambda e: not isinstance(e, KeyError))
    )
    observer = scheduler.start(lambda: result)
    assert [on_next(203, "a"), on_error_where(204, lambda e: e is fatal)] == observer.messages
    assert len(count) == 2


def test_non_retriable_first_error() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_cold_observable(on_error(3, Boom("no")))
    calls: list[RetryAttempt] = []
    result = source.pipe(
        retry_with_backoff(LINEAR, is_retriable=lambda e: False, on_retry=calls.append)
    )
    observer = scheduler.start(lambda: result)
    assert [on_error_where(203, lambda e: str(e) == "no")] == observer.messages
    assert source.subscriptions == [Subscription(200, 203)]
    assert calls == []


def test_reset_after_restarts_delays_only_for_a_long_lived_source() -> None:
    scheduler = TestScheduler()
    quick = scheduler.create_cold_observable(on_error(1, Boom("quick")))
    long_lived = scheduler.create_cold_observable(on_next(1, "up"), on_error(12, Boom("long")))
    flapping = scheduler.create_cold_observable(on_next(1, "up"), on_error(5, Boom("flap")))
    success = scheduler.create_cold_observable(on_next(1, "ok"), on_completed(2))
    source, _ = sequence(quick, quick, long_lived, quick, flapping, success)
    attempts: list[tuple[float, int, float, str]] = []

    def record(a: RetryAttempt) -> None:
        attempts.append((scheduler.clock, a.attempt, a.delay, str(a.error)))

    backoff = Backoff(initial=1, maximum=100, jitter=Jitter.NONE)
    result = source.pipe(
        retry_with_backoff(backoff, max_attempts=3, reset_after=10, on_retry=record)
    )
    observer = scheduler.start(lambda: result)
    assert attempts == [
        (201, 1, 1, "quick"),
        (203, 2, 2, "quick"),
        # subscribed at 205, first item at 206, error at 217: up 11 >= 10 -> start over
        (217, 1, 1, "long"),
        (219, 2, 2, "quick"),
        # subscribed at 221, first item at 222, error at 226: up 4 < 10 -> keep backing off
        (226, 3, 4, "flap"),
    ]
    assert observer.messages == [
        on_next(206, "up"),
        on_next(222, "up"),
        on_next(231, "ok"),
        on_completed(232),
    ]


def test_reset_after_counts_from_the_first_item_not_the_subscription() -> None:
    scheduler = TestScheduler()
    quick = scheduler.create_cold_observable(on_error(1, Boom("quick")))
    # Subscribed for 25 ticks, but its first item came only 5 ticks before the error.
    late_item = scheduler.create_cold_observable(on_next(20, "up"), on_error(25, Boom("late")))
    silent = scheduler.create_cold_observable(on_error(50, Boom("silent")))
    source, _ = sequence(quick, late_item, silent, quick)
    attempts: list[tuple[int, float]] = []
    result = source.pipe(
        retry_with_backoff(
            Backoff(initial=1, maximum=100, jitter=Jitter.NONE),
            max_attempts=4,
            reset_after=10,
            on_retry=lambda a: attempts.append((a.attempt, a.delay)),
        )
    )
    observer = scheduler.start(lambda: result)
    assert attempts == [(1, 1), (2, 2), (3, 4), (4, 8)]  # never reset
    assert observer.messages[-1].value.kind == "E"  # type: ignore[union-attr]
    exhausted = observer.messages[-1].value.exception  # type: ignore[union-attr]
    assert isinstance(exhausted, RetriesExhausted)
    assert exhausted.attempts == 4


def test_reset_after_none_never_resets() -> None:
    scheduler = TestScheduler()
    long_lived = scheduler.create_cold_observable(on_next(1, "up"), on_error(100, Boom()))
    delays: list[float] = []
    result = long_lived.pipe(
        retry_with_backoff(LINEAR, max_attempts=3, on_retry=lambda a: delays.append(a.delay))
    )
    scheduler.start(lambda: result, disposed=10_000)
    assert delays == [1, 2, 4]


def test_jittered_delays_come_from_the_seeded_rng() -> None:
    scheduler = TestScheduler()
    backoff = Backoff(initial=1, maximum=50, jitter=Jitter.FULL)
    source = scheduler.create_cold_observable(on_error(1, Boom()))
    delays: list[float] = []
    result = source.pipe(
        retry_with_backoff(
            backoff,
            max_attempts=6,
            rng=random.Random(99),
            on_retry=lambda a: delays.append(a.delay),
        )
    )
    scheduler.start(lambda: result, disposed=10_000)
    assert delays == list(islice(backoff.delays(random.Random(99)), 6))


def test_each_subscription_has_fresh_state() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_cold_observable(on_error(1, Boom()))
    attempts: list[tuple[int, float]] = []
    retried = source.pipe(
        retry_with_backoff(
            LINEAR, max_attempts=2, on_retry=lambda a: attempts.append((a.attempt, a.delay))
        )
    )
    retried.subscribe(scheduler=scheduler, on_error=lambda e: None)
    scheduler.advance_to(50)
    retried.subscribe(scheduler=scheduler, on_error=lambda e: None)
    scheduler.advance_to(100)
    assert attempts == [(1, 1), (2, 2), (1, 1), (2, 2)]


def test_disposing_during_a_wait_cancels_the_retry() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_cold_observable(on_error(1, Boom()))
    result = source.pipe(retry_with_backoff(Backoff(100, 100, jitter=Jitter.NONE)))
    observer = scheduler.start(lambda: result, disposed=250)
    scheduler.advance_to(1000)
    assert observer.messages == []
    assert source.subscriptions == [Subscription(200, 201)]


def test_explicit_scheduler_times_the_delays() -> None:
    scheduler = TestScheduler()
    source, count = sequence(reactivex.throw(Boom()), reactivex.throw(Boom()), reactivex.of("ok"))
    values: list[str] = []
    # Subscribed without a scheduler: the operator's own scheduler times the waits.
    source.pipe(retry_with_backoff(LINEAR, scheduler=scheduler)).subscribe(values.append)
    assert len(count) == 1
    scheduler.advance_to(1)
    assert len(count) == 2
    scheduler.advance_to(2)
    assert len(count) == 2
    scheduler.advance_to(3)
    assert values == ["ok"]


def test_without_any_scheduler_subscribing_fails_clearly() -> None:
    errors: list[Exception] = []
    reactivex.never().pipe(retry_with_backoff(LINEAR)).subscribe(on_error=errors.append)
    assert len(errors) == 1
    assert isinstance(errors[0], ValueError)
    assert str(errors[0]) == (
        "scheduler: retry_with_backoff needs a scheduler "
        "(pass one, or subscribe inside a running asyncio loop)"
    )


async def test_inside_a_running_loop_uses_the_asyncio_scheduler() -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[list[Any]] = loop.create_future()
    source, count = sequence(reactivex.throw(Boom()), reactivex.throw(Boom()), reactivex.of("ok"))
    source.pipe(retry_with_backoff(Backoff(0, 0)), ops.to_list()).subscribe(
        done.set_result, done.set_exception
    )
    assert len(count) == 1  # the retry waits for the loop, even with a zero delay
    assert await asyncio.wait_for(done, 5) == ["ok"]
    assert len(count) == 3


def test_is_retriable_raising_is_the_result_error() -> None:
    def broken(error: Exception) -> bool:
        raise RuntimeError("predicate bug")

    scheduler = TestScheduler()
    source = scheduler.create_cold_observable(on_error(1, Boom()))
    observer = scheduler.start(lambda: source.pipe(retry_with_backoff(LINEAR, is_retriable=broken)))
    assert [on_error_where(201, lambda e: isinstance(e, RuntimeError))] == observer.messages


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"backoff": 1.0}, TypeError, "backoff: must be a Backoff, got 1.0"),
        ({"max_attempts": -1}, ValueError, "max_attempts: must be >= 0, got -1"),
        ({"max_attempts": 1.5}, TypeError, "max_attempts: must be an int or None, got 1.5"),
        ({"is_retriable": None}, TypeError, "is_retriable: must be callable, got None"),
        ({"scheduler": "loop"}, TypeError, "scheduler: must be a reactivex scheduler or None"),
        ({"reset_after": -5}, ValueError, "reset_after: must be >= 0 seconds or None, got -5"),
        ({"reset_after": "5"}, TypeError, "reset_after: must be a number or None, got '5'"),
        ({"rng": 7}, TypeError, "rng: must be a random.Random or None, got 7"),
        ({"on_retry": 3}, TypeError, "on_retry: must be callable or None, got 3"),
    ],
)
def test_retry_with_backoff_validation(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    arguments: dict[str, Any] = {"backoff": LINEAR, **kwargs}
    backoff = arguments.pop("backoff")
    with pytest.raises(error) as info:
        retry_with_backoff(backoff, **arguments)
    assert str(info.value).startswith(message)


def test_retry_attempt_is_a_value() -> None:
    error = Boom()
    assert RetryAttempt(1, 0.5, error) == RetryAttempt(1, 0.5, error)
    with pytest.raises(AttributeError):
        RetryAttempt(1, 0.5, error).attempt = 2  # type: ignore[misc]
