"""``retry_with_backoff``: resubscribe after an error, after a backoff delay, a bounded number of
times."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.scheduler.eventloop import AsyncIOScheduler

from rxmqtt._checks import (
    check_callable,
    check_count,
    check_instance,
    check_optional_seconds,
)
from rxmqtt.errors import RetriesExhausted
from rxmqtt.policies import Backoff

from ._retry_when import retry_when

__all__ = ["RetryAttempt", "retry_with_backoff"]

_T = TypeVar("_T")


@dataclass(frozen=True)
class RetryAttempt:
    """What :func:`retry_with_backoff` is about to do, as given to its ``on_retry`` callback.

    Attributes:
        attempt: the number of the retry about to happen, from 1 (restarts at 1 after a reset).
        delay: seconds until it happens.
        error: the error that caused it.
    """

    attempt: int
    delay: float
    error: Exception


def _always(error: Exception) -> bool:
    return True


def retry_with_backoff(
    backoff: Backoff,
    max_attempts: int | None = None,
    is_retriable: Callable[[Exception], bool] = _always,
    scheduler: abc.SchedulerBase | None = None,
    *,
    reset_after: float | None = None,
    rng: random.Random | None = None,
    on_retry: Callable[[RetryAttempt], None] | None = None,
) -> Callable[[Observable[_T]], Observable[_T]]:
    """Resubscribe to the source after each error, waiting the next delay of ``backoff``.

    Built on :func:`retry_when`. On each source error:

    1. if ``is_retriable(error)`` is false, the result fails with that error, at once;
    2. if ``max_attempts`` retries have already been made, the result fails with
       :class:`~rxmqtt.errors.RetriesExhausted` (``attempts``, ``last_error``), at once;
    3. otherwise ``on_retry(RetryAttempt(attempt, delay, error))`` is called, and the source is
       resubscribed ``delay`` seconds later (``delay`` being the next of ``backoff.delays(rng)``),
       measured on the scheduler.

    ``reset_after`` tells a connection that stayed up from one that flaps: if the failed
    subscription emitted at least one item and the time from its *first* item to the error was
    ``>= reset_after`` seconds, the delays and the attempt count start over (the next retry is
    attempt 1 with the first delay). ``None`` never resets.

    With ``Backoff(initial=2, maximum=8, jitter=Jitter.NONE)`` and ``max_attempts=3``, against
    a source that fails as soon as it is subscribed::

        time (s):   0    2         6                 14
        subscribe:  ^    ^         ^                 ^
        source:     #    #         #                 #
        on_retry:   1/2s 2/4s      3/8s
        result:     -------------------------------- #  RetriesExhausted(3, last error) at 14

    Every subscription gets its own state (delays, counts). The scheduler is, in order: the
    ``scheduler`` argument, the scheduler given to ``subscribe()``, an ``AsyncIOScheduler`` for
    the running asyncio loop; with none of them, subscribing fails with a ``ValueError``. Never a
    thread-based default.

    Args:
        backoff: the delays between retries.
        max_attempts: how many retries (after the first subscription) before giving up with
            ``RetriesExhausted``; ``None`` retries forever.
        is_retriable: whether an error is worth retrying; errors it rejects pass through.
        scheduler: the scheduler that times the delays and reads the clock.
        reset_after: seconds from a subscription's first item to its error after which the
            backoff restarts; ``None`` never restarts it.
        rng: randomness for jitter (a seeded ``random.Random`` makes delays reproducible).
        on_retry: called right before each wait starts (logging, a ``Connecting`` event, ...).
            If it raises, the result fails with its exception.

    Returns:
        An operator function ``Observable[T] -> Observable[T]``.

    Raises:
        TypeError, ValueError: on a bad argument, at call time, with its name in the message.
    """
    _validate(backoff, max_attempts, is_retriable, scheduler, reset_after, rng, on_retry)

    def _retry_with_backoff(source: Observable[_T]) -> Observable[_T]:
        def subscribe(
            observer: abc.ObserverBase[_T], scheduler_: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            clock = _resolve_scheduler(scheduler, scheduler_)
            state = _State(backoff.delays(rng))

            def subscribe_source(
                inner: abc.ObserverBase[_T], inner_scheduler: abc.SchedulerBase | None = None
            ) -> abc.DisposableBase:
                state.first_item_at = None

                def on_next(value: _T) -> None:
                    if state.first_item_at is None:
                        state.first_item_at = clock.now
                    inner.on_next(value)

                return source.subscribe(
                    on_next, inner.on_error, inner.on_completed, scheduler=inner_scheduler
                )

            def decide(error: Exception) -> Observable[int]:
                if reset_after is not None and state.first_item_at is not None:
                    lived = (clock.now - state.first_item_at).total_seconds()
                    if lived >= reset_after:
                        state.delays = backoff.delays(rng)
                        state.attempts = 0
                if not is_retriable(error):
                    return reactivex.throw(error)
                if max_attempts is not None and state.attempts >= max_attempts:
                    return reactivex.throw(RetriesExhausted(state.attempts, error))
                delay = next(state.delays)
                state.attempts += 1
                if on_retry is not None:
                    on_retry(RetryAttempt(state.attempts, delay, error))
                return reactivex.timer(delay, scheduler=clock)

            def notifier(errors: Observable[Exception]) -> Observable[int]:
                return errors.pipe(ops.flat_map(decide))

            retried: Observable[_T] = Observable(subscribe_source).pipe(retry_when(notifier))
            return retried.subscribe(observer, scheduler=scheduler_)

        return Observable(subscribe)

    return _retry_with_backoff


class _State:
    """Per-subscription state of :func:`retry_with_backoff`."""

    __slots__ = ("attempts", "delays", "first_item_at")

    def __init__(self, delays: Iterator[float]) -> None:
        self.delays = delays
        self.attempts = 0
        self.first_item_at: datetime | None = None


def _resolve_scheduler(
    given: abc.SchedulerBase | None, subscribed: abc.SchedulerBase | None
) -> abc.SchedulerBase:
    if given is not None:
        return given
    if subscribed is not None:
        return subscribed
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise ValueError(
            "scheduler: retry_with_backoff needs a scheduler "
            "(pass one, or subscribe inside a running asyncio loop)"
        ) from None
    return AsyncIOScheduler(loop)


def _validate(
    backoff: object,
    max_attempts: object,
    is_retriable: object,
    scheduler: object,
    reset_after: object,
    rng: object,
    on_retry: object,
) -> None:
    check_instance("backoff", backoff, Backoff, "a Backoff")
    check_count("max_attempts", max_attempts, optional=True)
    check_callable("is_retriable", is_retriable)
    scheduler_kind = abc.SchedulerBase
    check_instance("scheduler", scheduler, scheduler_kind, "a reactivex scheduler", optional=True)
    check_optional_seconds("reset_after", reset_after)
    check_instance("rng", rng, random.Random, "a random.Random", optional=True)
    check_callable("on_retry", on_retry, optional=True)
