"""``retry_when``: resubscribe to a failed source whenever a notifier says so (RxJS semantics)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any, Generic, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import (
    CompositeDisposable,
    Disposable,
    SerialDisposable,
    SingleAssignmentDisposable,
)
from reactivex.subject import Subject

from rxmqtt._checks import check_callable

__all__ = ["retry_when"]

_T = TypeVar("_T")

Notifier = Callable[[Observable[Exception]], Observable[Any]]


def retry_when(notifier: Notifier) -> Callable[[Observable[_T]], Observable[_T]]:
    """Resubscribe to the source after an error, whenever ``notifier``'s observable emits.

    The semantics are RxJS's ``retryWhen``. On the source's first error, ``notifier`` is called
    (once per subscription) with ``errors``, an observable of the source's errors; the error
    then goes to ``errors``, and so does every later one. What ``notifier`` returns decides:

    - each item it emits resubscribes to the source (disposing the current source subscription
      if it is still alive);
    - its completion completes the result;
    - its error becomes the result's error.

    The source's items pass through, and the source's completion completes the result. Disposing
    the result disposes both the source subscription and the notifier's. The scheduler given to
    ``subscribe()`` is passed on to the source and to the notifier's observable.

    Retrying three times, two ticks after each error, then completing::

        source:    -a-#                (cold: each subscription replays it)
        notifier:  lambda errors: errors.pipe(ops.delay(2), ops.take(3))

        errors:    ---x----x----x
        retries:   -----r----r----r    (the third is also take(3)'s last item: it completes)
        result:    -a----a----a---|

    Synchronous loops are safe: a notifier that emits while the error is being delivered, and a
    source that errors again while being subscribed, are handled by a trampoline, so thousands of
    immediate retries do not grow the stack.

    Args:
        notifier: turns the stream of errors into the stream of "retry now" signals.

    Returns:
        An operator function ``Observable[T] -> Observable[T]``.

    Example:
        >>> import reactivex
        >>> from reactivex import operators as ops
        >>> attempts = []
        >>> def flaky(observer, scheduler=None):
        ...     attempts.append(1)
        ...     if len(attempts) < 3:
        ...         observer.on_error(OSError("boom"))
        ...     else:
        ...         observer.on_next("ok")
        ...         observer.on_completed()
        >>> reactivex.create(flaky).pipe(retry_when(lambda errors: errors)).run()
        'ok'
        >>> len(attempts)
        3
    """
    check_callable("notifier", notifier)

    def _retry_when(source: Observable[_T]) -> Observable[_T]:
        def subscribe(
            observer: abc.ObserverBase[_T], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            return _RetryWhen(source, notifier, observer, scheduler).run()

        return Observable(subscribe)

    return _retry_when


class _RetryWhen(Generic[_T]):
    """The state of one subscription to ``retry_when(notifier)(source)``."""

    def __init__(
        self,
        source: Observable[_T],
        notifier: Notifier,
        observer: abc.ObserverBase[_T],
        scheduler: abc.SchedulerBase | None,
    ) -> None:
        self._source = source
        self._notifier = notifier
        self._observer = observer
        self._scheduler = scheduler
        self._lock = threading.RLock()
        self._errors: Subject[Exception] | None = None
        self._done = False
        # Identifies the live source subscription; notifications of older ones are ignored.
        self._generation = 0
        # Trampoline: while ``_looping``, a resubscribe request only sets ``_pending``.
        self._looping = False
        self._pending = False
        self._source_subscription = SerialDisposable()
        self._notifier_subscription = SingleAssignmentDisposable()
        self._disposable = CompositeDisposable(
            Disposable(self._mark_done), self._source_subscription, self._notifier_subscription
        )

    def run(self) -> abc.DisposableBase:
        self._resubscribe()
        return self._disposable

    def _mark_done(self) -> None:
        with self._lock:
            self._done = True

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
                inner = SingleAssignmentDisposable()
                self._source_subscription.disposable = inner  # disposes the previous one
                inner.disposable = self._source.subscribe(
                    partial(self._on_source_next, generation),
                    partial(self._on_source_error, generation),
                    partial(self._on_source_completed, generation),
                    scheduler=self._scheduler,
                )
                with self._lock:
                    if self._done or not self._pending:
                        self._looping = False
                        return
        except BaseException:
            with self._lock:
                self._looping = False
            raise

    def _is_current(self, generation: int) -> bool:
        return not self._done and generation == self._generation

    def _on_source_next(self, generation: int, value: _T) -> None:
        if self._is_current(generation):
            self._observer.on_next(value)

    def _on_source_completed(self, generation: int) -> None:
        if self._is_current(generation):
            self._complete()

    def _on_source_error(self, generation: int, error: Exception) -> None:
        with self._lock:
            if not self._is_current(generation):
                return
            errors = self._errors
            first_error = errors is None
            if errors is None:
                errors = self._errors = Subject()
        if first_error:
            try:
                signals = self._notifier(errors)
                subscription = signals.subscribe(
                    lambda _: self._resubscribe(),
                    self._fail,
                    self._complete,
                    scheduler=self._scheduler,
                )
            except Exception as ex:
                self._fail(ex)
                return
            self._notifier_subscription.disposable = subscription
        if not self._done:
            errors.on_next(error)

    def _terminate(self) -> bool:
        """Mark the subscription finished; False if it already was."""
        with self._lock:
            if self._done:
                return False
            self._done = True
            return True

    def _complete(self) -> None:
        if self._terminate():
            try:
                self._observer.on_completed()
            finally:
                self._disposable.dispose()

    def _fail(self, error: Exception) -> None:
        if self._terminate():
            try:
                self._observer.on_error(error)
            finally:
                self._disposable.dispose()
