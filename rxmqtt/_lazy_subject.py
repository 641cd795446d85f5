"""``LazySubject``: a connection's hot stream whose Subject is made only when first asked for.

A process holding a thousand connections paid for five Subjects each (a lock, a list, the
object: about 300 bytes apiece) that nobody ever subscribed to; until someone asks, a
``LazySubject`` keeps only what a late subscriber must still see.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

from reactivex.subject import Subject

from ._current_value import CurrentValue

T = TypeVar("T")

_MAKING = threading.Lock()
"""Guards making a Subject against a value or the completion arriving meanwhile (rare: held
only while a stream has no Subject yet)."""


class LazySubject(Generic[T]):
    """``Subject`` (or, with ``current_value``, :class:`CurrentValue`) semantics, the Subject
    made by :meth:`subject`: a plain one hears what comes after; a current-value one replays
    the latest value first; both complete at once when the stream has completed."""

    __slots__ = ("_completed", "_has_value", "_latest", "_replays", "_subject")

    def __init__(self, *, current_value: bool = False) -> None:
        self._replays = current_value
        self._subject: Subject[T] | None = None
        self._latest: T | None = None
        self._has_value = False
        self._completed = False

    @property
    def observed(self) -> bool:
        """Whether the stream has a subscriber now."""
        subject = self._subject
        return subject is not None and bool(subject.observers)

    def subject(self) -> Subject[T]:
        """The stream's Subject, made now if nobody asked before."""
        subject = self._subject
        if subject is not None:
            return subject
        with _MAKING:
            if self._subject is None:
                made: Subject[T] = CurrentValue() if self._replays else Subject()
                if self._has_value:
                    made.on_next(self._latest)  # type: ignore[arg-type]  # (set with _has_value)
                    self._latest = None
                if self._completed:
                    made.on_completed()
                self._subject = made
            return self._subject

    def on_next(self, value: T) -> None:
        subject = self._subject
        if subject is None:
            with _MAKING:
                subject = self._subject
                if subject is None:
                    if self._replays and not self._completed:
                        self._latest, self._has_value = value, True
                    return
        subject.on_next(value)

    def on_completed(self) -> None:
        subject = self._subject
        if subject is None:
            with _MAKING:
                subject = self._subject
                if subject is None:
                    self._completed = True
                    return
        subject.on_completed()
