"""A bounded cache with per-entry time-to-live, for de-duplicating re-delivered requests.

QoS 1 is "at least once": a request whose PUBACK was lost with the connection is delivered again
after the reconnect. The executor remembers each request (by response topic and correlation data)
here, so the second delivery is answered from the cache instead of running the handler twice.
Pure and clock-injected, so its bounds are testable without waiting.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    expires_at: float


class DedupCache(Generic[K, V]):
    """At most ``max_entries`` entries, each forgotten ``ttl`` seconds after it was put.

    Inserting into a full cache evicts the oldest entry. Expired entries are purged lazily
    (on access, and from the oldest end on insert), so every operation is O(1) amortized.
    """

    def __init__(self, max_entries: int, ttl: float, clock: Callable[[], float]) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries: must be an int >= 1, got {max_entries!r}")
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
            raise ValueError(f"ttl: must be a positive number of seconds, got {ttl!r}")
        self._max = max_entries
        self._ttl = float(ttl)
        self._clock = clock
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()

    def __len__(self) -> int:
        """Entries held now (expired ones not yet purged included)."""
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The live value under ``key``, or ``None``."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            del self._entries[key]
            return None
        return entry.value

    def put(self, key: K, value: V, ttl: float | None = None) -> None:
        """Store ``value`` for ``ttl`` seconds (default: the cache's ``ttl``) from now."""
        now = self._clock()
        self._purge(now)
        self._entries.pop(key, None)
        self._entries[key] = _Entry(value, now + (self._ttl if ttl is None else ttl))
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def update(self, key: K, value: V) -> bool:
        """Replace the value under ``key`` keeping its expiry; False if it is gone."""
        entry = self._entries.get(key)
        if entry is None or entry.expires_at <= self._clock():
            return False
        entry.value = value
        return True

    def discard(self, key: K) -> None:
        """Forget ``key`` (no error if absent)."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()

    def _purge(self, now: float) -> None:
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest.expires_at > now:
                return
            self._entries.popitem(last=False)
