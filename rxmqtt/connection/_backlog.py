"""``Backlog``: what ``Connection.subscribe()`` holds for a filter until a reader comes."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from reactivex import abc

from ..message import Message

DEFAULT_BACKLOG = 1000
"""Messages a ``subscribe()``d filter keeps while no ``messages()`` reader is attached."""


class Backlog(abc.ObserverBase[Message]):
    """One observer of a ``subscribe()``d filter: it keeps the broker subscription alive (it
    counts as a subscriber) and keeps the messages that arrive (at most ``size``, the oldest
    dropped) for the next ``messages()`` reader, so that ``await subscribe(f)`` then
    ``async for m in messages(f)`` loses nothing in between, even while other readers of the
    filter get them too. It keeps them from each ``subscribe()`` until the next reader takes
    them, and whenever no reader is attached."""

    def __init__(
        self,
        size: int,
        alone: Callable[[], bool],
        on_drop: Callable[[Message], None],
        on_refused: Callable[[Exception], None],
    ) -> None:
        self._items: deque[Message] = deque()
        self._size = size
        self._alone = alone
        self._on_drop = on_drop
        self._on_refused = on_refused
        self._armed = True
        """A ``subscribe()`` call waits for its reader."""

    def arm(self) -> None:
        """Another ``subscribe()`` call: keep messages for the next reader again."""
        self._armed = True

    def on_next(self, value: Message) -> None:
        if not (self._armed or self._alone()):
            return
        if len(self._items) >= self._size:
            self._on_drop(self._items.popleft())
        self._items.append(value)

    def on_error(self, error: Exception) -> None:
        self._on_refused(error)

    def on_completed(self) -> None:
        pass

    def take(self) -> list[Message]:
        """Hand over (and forget) what was kept, to the reader that came."""
        self._armed = False
        items = list(self._items)
        self._items.clear()
        return items
