"""``retry_with_backoff``: resubscribe after an error, after a backoff delay, a bounded number of
times."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

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


class _Retrying(abc.DisposableBase, Generic[_T]):
    """One subscription of :func:`retry_with_backoff`: what ``retry_when`` with a notifier of
    ``flat_map(decide -> timer)`` does, kept in one object. A connection holds one of these for
    its whole life (the reconnect loop), so it is built from few objects: each source
    subscription gets one small observer, a wait one scheduled action."""

    __slots__ = (
        "_attempts",
        "_clock",
        "_delays",
        "_done",
        "_first_item_at",
        "_generation",
        "_lock",
        "_looping",
        "_observer",
        "_pending",
        "_policy",
        "_source",
        "_source_subscription",
        "_subscribe_scheduler",
        "_wait",
    )

    def __init__(
        self,
        source: Observable[_T],
        policy: _Policy,
        observer: abc.ObserverBase[_T],
        clock: abc.SchedulerBase,
        subscribe_scheduler: abc.SchedulerBase | None,
    ) -> None:
        self._source = source
        self._policy = policy
        self._observer = observer
        self._clock = clock
        self._subscribe_scheduler = subscribe_scheduler
        self._delays = policy.backoff.delays(policy.rng)
        self._attempts = 0
        self._first_item_at: datetime | None = None
        self._lock = threading.RLock()
        self._done = False
        self._generation = 0
        """Identifies the live source subscription; notifications of older ones are ignored."""
        self._looping = False
        """Trampoline: while a subscription is being made, a resubscribe only sets _pending."""
        self._pending = False
        self._source_subscription: abc.DisposableBase | None = None
        self._wait: abc.DisposableBase | None = None

    def run(self) -> abc.DisposableBase:
        self._resubscribe()
        return self

    def dispose(self) -> None:
        self._finish(None)

    def _finish(self, notify: Callable[[], None] | None) -> None:
        """End the subscription once: ``notify`` the observer, then let go of the source
        subscription and the wait (as an auto-detaching observer would)."""
        with self._lock:
            if self._done:
                return
            self._done = True
            subscription, self._source_subscription = self._source_subscription, None
            wait, self._wait = self._wait, None
        try:
            if notify is not None:
                notify()
        finally:
            if subscription is not None:
                subscription.dispose()
            if wait is not None:
                wait.dispose()

    # ------------------------------------------------------------ the source, (re)subscribed

    def _resubscribe(self) -> None:
        with self._lock:
            if self._done:
                return
            if self._looping:
                self._pending = True
                return
            self._looping = True
        try:
            while True:
                with self._lock:
                    if self._done:
                        self._looping = False
                        return
                    self._pending = False
                    self._generation += 1
                    generation = self._generation
                    previous, self._source_subscription = self._source_subscription, None
                    self._first_item_at = None
                if previous is not None:
                    previous.dispose()
                subscription: abc.DisposableBase | None = self._source.subscribe(
                    _SourceObserver(self, generation), scheduler=self._subscribe_scheduler
                )
                with self._lock:
                    if generation == self._generation and not self._done:
                        self._source_subscription = subscription
                        subscription = None
                    if self._done or not self._pending:
                        self._looping = False
                        late = subscription
                        break
                if subscription is not None:
                    subscription.dispose()
            if late is not None:  # (disposed, or already replaced, while it was being made)
                late.dispose()
        except BaseException:
            with self._lock:
                self._looping = False
            raise

    def _current(self, generation: int) -> bool:
        return not self._done and generation == self._generation

    def source_next(self, generation: int, value: _T) -> None:
        if not self._current(generation):
            return
        if self._first_item_at is None:
            self._first_item_at = self._clock.now
        self._observer.on_next(value)

    def source_completed(self, generation: int) -> None:
        if self._current(generation):
            self._finish(self._observer.on_completed)

    def source_error(self, generation: int, error: Exception) -> None:
        if not self._current(generation):
            return
        try:
            delay = self._decide(error)
        except Exception as failure:  # (is_retriable or on_retry raised)
            delay = failure
        if isinstance(delay, Exception):
            final = delay
            self._finish(lambda: self._observer.on_error(final))
            return
        wait = self._clock.schedule_relative(delay, self._waited)
        with self._lock:
            if self._done:
                late: abc.DisposableBase | None = wait
            else:
                late, self._wait = None, wait
        if late is not None:
            late.dispose()

    # ------------------------------------------------------------ the decision and the wait

    def _decide(self, error: Exception) -> float | Exception:
        """The delay before the next subscription, or the error that ends the result."""
        policy = self._policy
        first = self._first_item_at
        if policy.reset_after is not None and first is not None:
            lived = (self._clock.now - first).total_seconds()
            if lived >= policy.reset_after:
                self._delays = policy.backoff.delays(policy.rng)
                self._attempts = 0
        if not policy.is_retriable(error):
            return error
        if policy.max_attempts is not None and self._attempts >= policy.max_attempts:
            return RetriesExhausted(self._attempts, error)
        delay = next(self._delays)
        self._attempts += 1
        if policy.on_retry is not None:
            policy.on_retry(RetryAttempt(self._attempts, delay, error))
        return delay

    def _waited(self, _scheduler: abc.SchedulerBase, _state: object = None) -> None:
        with self._lock:
            self._wait = None
        self._resubscribe()


class _SourceObserver(abc.ObserverBase[_T], Generic[_T]):
    """What one source subscription reports to its :class:`_Retrying`, with its generation."""

    __slots__ = ("_generation", "_owner")

    def __init__(self, owner: _Retrying[_T], generation: int) -> None:
        self._owner = owner
        self._generation = generation

    def on_next(self, value: _T) -> None:
        self._owner.source_next(self._generation, value)

    def on_error(self, error: Exception) -> None:
        self._owner.source_error(self._generation, error)

    def on_completed(self) -> None:
        self._owner.source_completed(self._generation)


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
