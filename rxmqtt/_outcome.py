"""The observable one operation returns: a single value then completion, or an error.

``publish()`` returns one per call, so subscribing to it and awaiting it are on the hot path of
every application that checks its publishes. reactivex's generic route (``AsyncSubject`` behind
an isolating wrapper, a trampoline per ``subscribe()``, an operator chain and a scheduler per
``await``) costs about 20 µs to subscribe and 45 µs to await; this class does both directly,
and, like ``isolated()``, keeps a subscriber's exception from reaching whoever resolves it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar, cast

from reactivex import Observable, abc
from reactivex.disposable import Disposable

log = logging.getLogger("rxmqtt")

T = TypeVar("T")

_Callbacks = tuple[
    Callable[[Any], None] | None, Callable[[Exception], None] | None, Callable[[], None] | None
]


def _noop() -> None:
    pass


_SETTLE_LOCK = threading.Lock()
"""Guards every outcome's settlement against a subscription from another thread. Shared (one
outcome is built per ``publish()``): it is held for a few assignments, never while a subscriber
runs."""

_UNUSED_LOCK = threading.RLock()

_DONE = Disposable(_noop)
"""What subscribing to a settled outcome returns: there is nothing left to dispose."""


class Outcome(Observable[T], Generic[T]):
    """Emits one value then completes, or errors, when its producer settles it; replays that to
    later subscribers. Subscribe or ``await`` from any thread; an exception raised by a
    subscriber is logged and goes no further."""

    lock = _UNUSED_LOCK
    """reactivex's per-observable lock, unused here: one outcome is built per ``publish()``, so
    ``Observable.__init__`` (an ``RLock`` each) is skipped."""

    _settle_lock = _SETTLE_LOCK

    def __init__(self) -> None:  # (Observable.__init__ skipped on purpose: see ``lock``)
        self._subscribe = None
        self._settled = False
        self._value: T | None = None
        self._error: Exception | None = None
        self._waiting: dict[object, _Callbacks] = {}
        """Subscribers not yet called, by a token of their own subscription (in order)."""

    # ------------------------------------------------------------------ producer side

    def _resolve(self, value: T) -> None:
        """Settle with ``value`` (then completion); a second settlement is ignored."""
        self._settle(value, None)

    def _fail(self, error: Exception) -> None:
        """Settle with ``error``; a second settlement is ignored."""
        self._settle(None, error)

    def _settle(self, value: T | None, error: Exception | None) -> None:
        with self._settle_lock:
            if self._settled:
                return
            self._settled, self._value, self._error = True, value, error
            waiting, self._waiting = self._waiting, {}
        for callbacks in waiting.values():
            _deliver(callbacks, value, error)

    @property
    def settled(self) -> bool:
        """Whether the value or the error is known."""
        return self._settled

    # ------------------------------------------------------------------ consumer side

    def subscribe(
        self,
        on_next: abc.ObserverBase[T] | abc.OnNext[T] | None = None,
        on_error: abc.OnError | None = None,
        on_completed: abc.OnCompleted | None = None,
        *,
        scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase:
        """Subscribe an observer or callbacks; settled already, they are called at once."""
        if on_next is not None and callable(getattr(on_next, "on_next", None)):
            observer = cast(abc.ObserverBase[T], on_next)
            callbacks: _Callbacks = (observer.on_next, observer.on_error, observer.on_completed)
        else:
            callbacks = (cast("Callable[[Any], None] | None", on_next), on_error, on_completed)
        with self._settle_lock:
            if not self._settled:
                token = object()
                self._waiting[token] = callbacks
                return Disposable(lambda: self._forget(token))
        _deliver(callbacks, self._value, self._error)
        return _DONE

    def _subscribe_core(
        self, observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        return self.subscribe(observer)

    def _forget(self, token: object) -> None:
        with self._settle_lock:
            self._waiting.pop(token, None)

    def __await__(self) -> Generator[Any, None, T]:
        """The value, or the error raised; resolved from another thread, it is handed over
        through the awaiting loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        awaiting_thread = threading.get_ident()

        def settle(value: T | None, error: Exception | None) -> None:
            if future.done():  # the awaiting task was cancelled
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(cast(T, value))

        def on_settled(value: T | None, error: Exception | None) -> None:
            if threading.get_ident() == awaiting_thread:
                settle(value, error)
            else:
                loop.call_soon_threadsafe(settle, value, error)

        self.subscribe(lambda value: on_settled(value, None), lambda error: on_settled(None, error))
        return future.__await__()


def settle_value(outcome: Outcome[T], value: T) -> None:
    """The producer's side, kept off the public surface: settle ``outcome`` with ``value``."""
    outcome._settle(value, None)  # noqa: SLF001 - Outcome's producer side is this module's


def settle_error(outcome: Outcome[Any], error: Exception) -> None:
    """The producer's side, kept off the public surface: settle ``outcome`` with ``error``."""
    outcome._fail(error)  # noqa: SLF001 - Outcome's producer side is this module's


def _deliver(callbacks: _Callbacks, value: Any, error: Exception | None) -> None:
    """Call a subscriber's callbacks for the settlement, each fenced off like ``isolated()``."""
    on_next, on_error, on_completed = callbacks
    if error is not None:
        if on_error is None:
            log.error("an rxmqtt outcome failed and its subscriber has no on_error: %r", error)
            return
        _fenced(on_error, error, "on_error")
        return
    if on_next is not None:
        _fenced(on_next, value, "on_next")
    if on_completed is not None:
        try:
            on_completed()
        except Exception:
            log.exception("a subscriber of an rxmqtt outcome raised in on_completed; ignored")


def _fenced(callback: Callable[[Any], None], argument: Any, name: str) -> None:
    try:
        callback(argument)
    except Exception:
        log.exception("a subscriber of an rxmqtt outcome raised in %s; ignored", name)
