"""Async iteration over Observables: ``async for`` on the connection's streams, and
:func:`aiter` for any ``reactivex`` pipeline.

An Observable pushes; an ``async for`` loop pulls at its own pace. Between them sits a bounded
buffer. The slow-reader policy: when a value arrives and ``buffer`` values are already waiting,
the **oldest** waiting value is dropped (the reader gets the most recent ones), counted on
:attr:`StreamIterator.dropped` and passed to ``on_drop``; for ``Connection.messages()`` every
such message is also reported on ``Connection.dropped`` (``DropReason.UNREAD``). Memory
never grows past ``buffer`` values, however slow the loop.

Leaving the loop in any way (``break``, ``return``, an exception, the task cancelled) disposes
the subscription, so the last reader of ``messages()`` sends UNSUBSCRIBE. The loop ends when
the source completes (``close()`` completes every stream) and raises the source's error (e.g.
:class:`~rxmqtt.SubscribeError`) once every value before it was read.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Generic, Self, TypeVar

from reactivex import Observable, abc

from ._scoped import AsyncClosedOnExit

T = TypeVar("T")

DEFAULT_BUFFER = 1000
"""Values an ``async for`` loop may fall behind by before the oldest are dropped."""


class Stream(Observable[T], Generic[T]):
    """An ``Observable`` that an ``async for`` loop can also read (with the default buffer).

    Every stream of a :class:`~rxmqtt.Connection` is one. Operators (``pipe``) return plain
    Observables: read those with :func:`aiter`, which also takes a ``buffer`` size.
    """

    def __init__(
        self,
        subscribe: Callable[[abc.ObserverBase[T], abc.SchedulerBase | None], abc.DisposableBase],
        *,
        on_drop: Callable[[T], None] | None = None,
    ) -> None:
        super().__init__(subscribe)
        self._on_drop = on_drop

    def __aiter__(self) -> StreamIterator[T]:
        return StreamIterator(self, DEFAULT_BUFFER, self._on_drop)


def aiter(
    source: Observable[T],
    *,
    buffer: int = DEFAULT_BUFFER,
    on_drop: Callable[[T], None] | None = None,
) -> StreamIterator[T]:
    """Subscribe to ``source`` now and read it with ``async for``, through a buffer of at most
    ``buffer`` values (the oldest dropped beyond that, see the module's slow-reader policy).

    ``on_drop`` is called with each dropped value (on the source's thread); a connection's
    ``messages()`` also reports them on ``Connection.dropped``. Use it for any pipeline::

        async for celsius in rxmqtt.aiter(conn.messages("t").pipe(ops.map(parse)), buffer=10):
            ...
    """
    if isinstance(buffer, bool) or not isinstance(buffer, int):
        raise TypeError(f"buffer: must be an int, got {type(buffer).__name__}")
    if buffer < 1:
        raise ValueError(f"buffer: must be >= 1, got {buffer}")
    if on_drop is not None and not callable(on_drop):
        raise TypeError(f"on_drop: must be callable or None, got {type(on_drop).__name__}")
    if not isinstance(source, Observable):
        raise TypeError(f"source: must be an Observable, got {type(source).__name__}")
    own = source._on_drop if isinstance(source, Stream) else None  # noqa: SLF001 - same module
    if own is not None and on_drop is not None:
        user_drop = on_drop

        def both(value: T) -> None:
            own(value)
            user_drop(value)

        return StreamIterator(source, buffer, both)
    return StreamIterator(source, buffer, own or on_drop)


class _Inbox(Generic[T]):
    """What the subscription writes into and the iterator reads from. It holds no reference to
    the iterator, so dropping the iterator (leaving the loop) finalizes it at once."""

    def __init__(self, size: int, on_drop: Callable[[T], None] | None) -> None:
        self.size = size
        self.on_drop = on_drop
        self.items: deque[T] = deque()
        self.dropped = 0
        self.done = False
        self.error: Exception | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.waiter_thread = 0
        self.lock = threading.Lock()

    def on_next(self, value: T) -> None:
        evicted: list[T] = []
        with self.lock:
            if self.done:
                return
            if len(self.items) >= self.size:
                evicted.append(self.items.popleft())
                self.dropped += 1
            self.items.append(value)
            self._wake()
        if evicted and self.on_drop is not None:
            self.on_drop(evicted[0])

    def on_error(self, error: Exception) -> None:
        with self.lock:
            if not self.done:
                self.done, self.error = True, error
                self._wake()

    def on_completed(self) -> None:
        with self.lock:
            if not self.done:
                self.done = True
                self._wake()

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is None or waiter.done():
            return
        if self.waiter_thread == threading.get_ident():
            waiter.set_result(None)
        else:
            waiter.get_loop().call_soon_threadsafe(_settle, waiter)


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class StreamIterator(AsyncIterator[T], AsyncClosedOnExit, Generic[T]):
    """The reader side of :func:`aiter`: an async iterator over a subscribed Observable.

    ``dropped`` counts values lost to a slow reader; ``buffered`` is how many wait now.
    ``aclose()`` (or ``async with``) ends it explicitly; otherwise leaving the ``async for``
    ends it, since the loop held the only reference.
    """

    def __init__(
        self, source: Observable[T], buffer: int, on_drop: Callable[[T], None] | None
    ) -> None:
        self._inbox: _Inbox[T] = _Inbox(buffer, on_drop)
        self._subscription: abc.DisposableBase | None = None
        inbox = self._inbox
        self._subscription = source.subscribe(inbox.on_next, inbox.on_error, inbox.on_completed)

    @property
    def dropped(self) -> int:
        """Values dropped so far because the reader fell ``buffer`` values behind."""
        return self._inbox.dropped

    @property
    def buffered(self) -> int:
        """Values received and not yet read."""
        return len(self._inbox.items)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        inbox = self._inbox
        while True:
            with inbox.lock:
                if inbox.items:
                    return inbox.items.popleft()
                ended = inbox.done
                error, inbox.error = inbox.error, None
                if not ended:
                    if inbox.waiter is not None:
                        raise RuntimeError("anext: another task is already waiting on this")
                    waiter = asyncio.get_running_loop().create_future()
                    inbox.waiter, inbox.waiter_thread = waiter, threading.get_ident()
            if ended:
                self._dispose()
                if error is not None:
                    raise error
                raise StopAsyncIteration
            try:
                await waiter
            except BaseException:  # cancelled: the loop is being left
                inbox.waiter = None
                self.close()
                raise

    def close(self) -> None:
        """Stop reading: dispose the subscription and forget what waits. Idempotent."""
        inbox = self._inbox
        with inbox.lock:
            inbox.done = True
            inbox.items.clear()
            inbox.error = None
            inbox._wake()  # noqa: SLF001 - the inbox is this module's
        self._dispose()

    async def aclose(self) -> None:
        """:meth:`close`, as an awaitable (for ``contextlib.aclosing``)."""
        self.close()

    def _dispose(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.dispose()

    def __del__(self) -> None:
        # Leaving an ``async for`` by break/return/exception drops the last reference here.
        with contextlib.suppress(Exception):  # e.g. the source's loop is already closed
            self._dispose()
