"""``with`` / ``async with`` for the objects that own something, written once.

Each base names the methods a block calls on the way in and out, so a class states its
lifetime by what it inherits instead of repeating the ``__exit__`` signature;
:func:`once_started` guards what such an object only knows once started.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self, TypeVar

T = TypeVar("T")


class StartedOnEnter(ABC):
    """``with obj:`` gives ``obj.start()`` and calls ``obj.close()`` on the way out."""

    @abstractmethod
    def start(self) -> Self:
        """Start (idempotent) and return ``self``."""

    @abstractmethod
    def close(self) -> None:
        """Release what the object owns; idempotent."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClosedOnExit(ABC):
    """``async with obj:`` gives ``obj`` and calls ``obj.close()`` on the way out."""

    @abstractmethod
    def close(self) -> None:
        """Release what the object owns; idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


class AsyncStartedOnEnter(ABC):
    """``async with obj:`` awaits ``obj.start()`` on the way in, ``obj.stop()`` on the way out."""

    @abstractmethod
    async def start(self) -> None:
        """Start serving."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop serving; idempotent."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class DisposedOnExit(ABC):
    """``with`` and ``async with obj:`` give ``obj`` and call ``obj.dispose()`` on the way out."""

    @abstractmethod
    def dispose(self) -> None:
        """Release what the object took; idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.dispose()


def once_started(value: T | None, error: str) -> T:
    """``value``, which an object learns when it starts (a bound port, a helper it creates), or
    ``RuntimeError(error)`` while it is still ``None``."""
    if value is None:
        raise RuntimeError(error)
    return value
