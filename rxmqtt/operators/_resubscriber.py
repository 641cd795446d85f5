"""``Resubscriber``: one subscription of a retrying operator, which subscribes its source again
and again, one live source subscription at a time (``retry_when``, ``retry_with_backoff``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from reactivex import Observable, abc

_T = TypeVar("_T")


class Resubscriber(abc.DisposableBase, Generic[_T]):
    """The source's live subscription, the observer, and one side subscription (what decides
    when to resubscribe: a notifier, a timer), in one small object: a connection holds one of
    these for its whole life (its reconnect loop). Subclasses handle the source's notifications
    of the live subscription (``source_next``, ``source_error``, ``source_completed``; those
    of an older one never arrive there) and call :meth:`_resubscribe` and :meth:`_finish`."""

    __slots__ = (
        "_done",
        "_generation",
        "_lock",
        "_looping",
        "_observer",
        "_pending",
        "_side",
        "_source",
        "_source_subscription",
        "_subscribe_scheduler",
    )

    def __init__(
        self,
        source: Observable[_T],
        observer: abc.ObserverBase[_T],
        subscribe_scheduler: abc.SchedulerBase | None,
    ) -> None:
        self._source = source
        self._observer = observer
        self._subscribe_scheduler = subscribe_scheduler
        self._lock = threading.RLock()
        self._done = False
        self._generation = 0
        """Identifies the live source subscription; notifications of older ones are ignored."""
        self._looping = False
        """Trampoline: while a subscription is being made, a resubscribe only sets _pending."""
        self._pending = False
        self._source_subscription: abc.DisposableBase | None = None
        self._side: abc.DisposableBase | None = None

    def run(self) -> abc.DisposableBase:
        """Subscribe the source; the result disposes everything."""
        self._resubscribe()
        return self

    def dispose(self) -> None:
        self._finish(None)

    # ------------------------------------------------------------ for the subclasses

    def source_next(self, value: _T) -> None:
        self._observer.on_next(value)

    def source_error(self, error: Exception) -> None:
        raise NotImplementedError

    def source_completed(self) -> None:
        self._finish(self._observer.on_completed)

    def _fail(self, error: Exception) -> None:
        self._finish(lambda: self._observer.on_error(error))

    def _finish(self, notify: Callable[[], None] | None) -> None:
        """End the subscription once: ``notify`` the observer, then let go of the source
        subscription and the side one (as an auto-detaching observer would)."""
        with self._lock:
            if self._done:
                return
            self._done = True
            subscription, self._source_subscription = self._source_subscription, None
            side, self._side = self._side, None
        try:
            if notify is not None:
                notify()
        finally:
            if subscription is not None:
                subscription.dispose()
            if side is not None:
                side.dispose()

    def _keep_side(self, side: abc.DisposableBase | None) -> None:
        """Hold ``side`` (disposed with the subscription; at once when it has ended)."""
        with self._lock:
            late, self._side = (side, None) if self._done else (None, side)
        if late is not None:
            late.dispose()

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
                if previous is not None:
                    previous.dispose()
                self._subscribing()
                subscription: abc.DisposableBase | None = self._source.subscribe(
                    _SourceObserver(self, generation), scheduler=self._subscribe_scheduler
                )
                with self._lock:
                    if generation == self._generation and not self._done:
                        self._source_subscription, subscription = subscription, None
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

    def _subscribing(self) -> None:
        """Called right before each subscription of the source."""

    def current(self, generation: int) -> bool:
        """Whether ``generation`` is the live source subscription (and it has not ended)."""
        return not self._done and generation == self._generation


class _SourceObserver(abc.ObserverBase[_T], Generic[_T]):
    """What one source subscription reports to its :class:`Resubscriber`, while current."""

    __slots__ = ("_generation", "_owner")

    def __init__(self, owner: Resubscriber[_T], generation: int) -> None:
        self._owner = owner
        self._generation = generation

    def on_next(self, value: _T) -> None:
        if self._owner.current(self._generation):
            self._owner.source_next(value)

    def on_error(self, error: Exception) -> None:
        if self._owner.current(self._generation):
            self._owner.source_error(error)

    def on_completed(self) -> None:
        if self._owner.current(self._generation):
            self._owner.source_completed()
