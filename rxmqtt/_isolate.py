"""Keep an application's faulty subscriber from breaking the connection that feeds it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from reactivex import Observable, abc

from ._aiter import Stream

log = logging.getLogger("rxmqtt")

T = TypeVar("T")


def isolated(source: Observable[T], on_drop: Callable[[T], None] | None = None) -> Stream[T]:
    """``source`` with each subscriber's callbacks fenced off: an exception raised by one is
    logged with its traceback and goes no further, so it can never unwind into the engine, the
    reconnect loop or another subscriber. (reactivex ends that one subscription, as it would.)
    The result is a :class:`~rxmqtt.Stream` (``async for`` works; ``on_drop`` reports what a
    slow loop lost)."""

    def subscribe(
        observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        return source.subscribe(_Fenced(observer), scheduler=scheduler)

    return Stream(subscribe, on_drop=on_drop)


class _Fenced(abc.ObserverBase[T]):
    """One subscriber, its exceptions logged and stopped here (one small object per subscriber:
    a process may hold thousands of connections, each with its subscribers)."""

    __slots__ = ("_observer",)

    def __init__(self, observer: abc.ObserverBase[T]) -> None:
        self._observer = observer

    def on_next(self, value: T) -> None:
        try:
            self._observer.on_next(value)
        except Exception:
            log.exception("a subscriber of an rxmqtt stream raised in on_next; ignored")

    def on_error(self, error: Exception) -> None:
        try:
            self._observer.on_error(error)
        except Exception:
            log.exception("a subscriber of an rxmqtt stream raised in on_error; ignored")

    def on_completed(self) -> None:
        try:
            self._observer.on_completed()
        except Exception:
            log.exception("a subscriber of an rxmqtt stream raised in on_completed; ignored")
