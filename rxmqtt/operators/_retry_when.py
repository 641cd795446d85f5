"""``retry_when``: resubscribe to a failed source whenever a notifier says so (RxJS semantics)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from reactivex import Observable, abc
from reactivex.subject import Subject

from rxmqtt._checks import check_callable

from ._resubscriber import Resubscriber

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


class _RetryWhen(Resubscriber[_T]):
    """The state of one subscription to ``retry_when(notifier)(source)``; the side
    subscription is the notifier's, made at the first error."""

    __slots__ = ("_errors", "_notifier")

    def __init__(
        self,
        source: Observable[_T],
        notifier: Notifier,
        observer: abc.ObserverBase[_T],
        scheduler: abc.SchedulerBase | None,
    ) -> None:
        super().__init__(source, observer, scheduler)
        self._notifier = notifier
        self._errors: Subject[Exception] | None = None

    def source_error(self, error: Exception) -> None:
        with self._lock:
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
                    self.source_completed,
                    scheduler=self._subscribe_scheduler,
                )
            except Exception as ex:
                self._fail(ex)
                return
            self._keep_side(subscription)
        if not self._done:
            errors.on_next(error)
