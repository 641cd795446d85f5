"""``retry_with_backoff``: resubscribe after an error, after a backoff delay, a bounded number of
times."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from reactivex import Observable, abc
from reactivex.scheduler.eventloop import AsyncIOScheduler

from rxmqtt._checks import (
    check_callable,
    check_count,
    check_instance,
    check_optional_seconds,
)
from rxmqtt.errors import RetriesExhausted
from rxmqtt.policies import Backoff

from ._resubscriber import Resubscriber

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

    What :func:`retry_when` does with a notifier that waits each delay (one object per
    subscription, a connection holds one for its life). On each source error:

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
    policy = _Policy(backoff, max_attempts, is_retriable, scheduler, reset_after, rng, on_retry)

    def _retry_with_backoff(source: Observable[_T]) -> Observable[_T]:
        def subscribe(
            observer: abc.ObserverBase[_T], scheduler_: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            clock = _resolve_scheduler(scheduler, scheduler_)
            return _Retrying(source, policy, observer, clock, scheduler_).run()

        return Observable(subscribe)

    return _retry_with_backoff


@dataclass(frozen=True, slots=True)
class _Policy:
    """The arguments of one :func:`retry_with_backoff` call, shared by its subscriptions."""

    backoff: Backoff
    max_attempts: int | None
    is_retriable: Callable[[Exception], bool]
    scheduler: abc.SchedulerBase | None
    reset_after: float | None
    rng: random.Random | None
    on_retry: Callable[[RetryAttempt], None] | None


class _Retrying(Resubscriber[_T]):
    """One subscription of :func:`retry_with_backoff`: what ``retry_when`` with a notifier of
    ``flat_map(decide -> timer)`` does, without the notifier's Subject and operators (a
    connection holds one of these for its life); the side subscription is the wait."""

    __slots__ = ("_attempts", "_clock", "_delays", "_first_item_at", "_policy")

    def __init__(
        self,
        source: Observable[_T],
        policy: _Policy,
        observer: abc.ObserverBase[_T],
        clock: abc.SchedulerBase,
        subscribe_scheduler: abc.SchedulerBase | None,
    ) -> None:
        super().__init__(source, observer, subscribe_scheduler)
        self._policy = policy
        self._clock = clock
        self._delays: Iterator[float] | None = None
        """Made at the first error (a source that never fails never needs them)."""
        self._attempts = 0
        self._first_item_at: datetime | None = None

    def _subscribing(self) -> None:
        self._first_item_at = None

    def source_next(self, value: _T) -> None:
        if self._first_item_at is None:
            self._first_item_at = self._clock.now
        self._observer.on_next(value)

    def source_error(self, error: Exception) -> None:
        try:
            delay = self._decide(error)
        except Exception as failure:  # (is_retriable or on_retry raised)
            delay = failure
        if isinstance(delay, Exception):
            self._fail(delay)
            return
        self._keep_side(self._clock.schedule_relative(delay, self._waited))

    def _decide(self, error: Exception) -> float | Exception:
        """The delay before the next subscription, or the error that ends the result."""
        policy = self._policy
        first = self._first_item_at
        if policy.reset_after is not None and first is not None:
            lived = (self._clock.now - first).total_seconds()
            if lived >= policy.reset_after:
                self._delays = None
                self._attempts = 0
        if not policy.is_retriable(error):
            return error
        if policy.max_attempts is not None and self._attempts >= policy.max_attempts:
            return RetriesExhausted(self._attempts, error)
        if self._delays is None:
            self._delays = policy.backoff.delays(policy.rng)
        delay = next(self._delays)
        self._attempts += 1
        if policy.on_retry is not None:
            policy.on_retry(RetryAttempt(self._attempts, delay, error))
        return delay

    def _waited(self, _scheduler: abc.SchedulerBase, _state: object = None) -> None:
        self._keep_side(None)
        self._resubscribe()


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
