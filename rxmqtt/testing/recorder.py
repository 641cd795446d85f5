"""``Recorder``: collect what an observable emits and await conditions on it, with deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

from reactivex import Observable
from reactivex.abc import DisposableBase

T = TypeVar("T")


class Recorder(Generic[T]):
    """Subscribes to ``source`` on creation and keeps every item, the error and completion.

    ``await recorder.wait_until(pred, timeout)`` polls nothing: it wakes on each emission and
    raises ``TimeoutError`` (listing what was seen) when the deadline passes.
    """

    def __init__(self, source: Observable[T]) -> None:
        self.items: list[T] = []
        self.error: Exception | None = None
        self.completed = False
        self._changed = asyncio.Event()
        self._subscription: DisposableBase = source.subscribe(
            self._on_next, self._on_error, self._on_completed
        )

    def _on_next(self, item: T) -> None:
        self.items.append(item)
        self._changed.set()

    def _on_error(self, error: Exception) -> None:
        self.error = error
        self._changed.set()

    def _on_completed(self) -> None:
        self.completed = True
        self._changed.set()

    async def wait_until(
        self, predicate: Callable[[list[T]], bool], timeout: float = 10.0, what: str = ""
    ) -> list[T]:
        """Wait until ``predicate(items)`` holds; returns the items."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self.items):
            remaining = deadline - loop.time()
            if remaining <= 0:
                shown = self.items[-20:]
                raise TimeoutError(
                    f"timed out after {timeout}s waiting for {what or 'a condition'}; "
                    f"{len(self.items)} items, last ones: {shown!r}, error={self.error!r}"
                )
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                continue
        return self.items

    async def wait_for_item(
        self, predicate: Callable[[T], bool], timeout: float = 10.0, what: str = ""
    ) -> T:
        """Wait for the first item (seen so far or later) matching ``predicate``."""
        await self.wait_until(lambda items: any(predicate(i) for i in items), timeout, what)
        return next(i for i in self.items if predicate(i))

    async def wait_for_count(self, count: int, timeout: float = 10.0) -> list[T]:
        """Wait until at least ``count`` items arrived."""
        return await self.wait_until(lambda items: len(items) >= count, timeout, f"{count} items")

    async def wait_done(self, timeout: float = 10.0) -> None:
        """Wait for completion or error."""
        await self.wait_until(lambda _: self.completed or self.error is not None, timeout, "end")

    def dispose(self) -> None:
        """Stop recording (unsubscribe from the source)."""
        self._subscription.dispose()
