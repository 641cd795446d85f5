"""A hot stream with a current value: what ``connection_state`` and ``queue_stats`` are."""

from __future__ import annotations

from typing import Generic, TypeVar

from reactivex import abc
from reactivex.disposable import Disposable
from reactivex.subject import Subject
from reactivex.subject.innersubscription import InnerSubscription

T = TypeVar("T")


class CurrentValue(Subject[T], Generic[T]):
    """Each new subscriber gets the current value at once (once there is one), then every later
    one; after completion, the last value and then the completion.

    ``ReplaySubject(1, scheduler=ImmediateScheduler())`` behaves the same, but gives every
    subscriber a scheduled observer and every value a scheduled action: about 8 KiB per
    connection for its two state streams, which a process holding a thousand connections pays
    a thousand times.
    """

    def __init__(self) -> None:
        super().__init__()
        self._has_value = False
        self._value: T | None = None

    @property
    def value(self) -> T | None:
        """The current value (``None`` before the first)."""
        return self._value

    def on_next(self, value: T) -> None:
        with self.lock:
            if self.is_stopped:
                return
            self._value, self._has_value = value, True
        super().on_next(value)

    def _subscribe_core(
        self, observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        with self.lock:
            self.check_disposed()
            has_value, value = self._has_value, self._value
            stopped = self.is_stopped
            if not stopped:
                self.observers.append(observer)
        if has_value:
            observer.on_next(value)  # type: ignore[arg-type]  # (set together with has_value)
        if not stopped:
            return InnerSubscription(self, observer)
        if self.exception is not None:
            observer.on_error(self.exception)
        else:
            observer.on_completed()
        return Disposable()
