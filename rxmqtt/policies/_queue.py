"""QueuePolicy: how many messages/bytes to hold while offline, and what to do when full.

Pure configuration, validated on construction so that a bad value fails at the call site with a
message naming the argument. The behaviour lives in :class:`rxmqtt.queue.OfflineQueue`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # avoid an import cycle: rxmqtt.queue imports this module at runtime
    from rxmqtt.queue._types import QueueStore

__all__ = ["Drain", "Overflow", "Qos0Offline", "QueuePolicy"]


class Overflow(enum.Enum):
    """What a full queue does with one more message."""

    DROP_OLDEST = "drop_oldest"
    """Evict the oldest queued messages until the new one fits (fresh data matters most)."""
    DROP_NEWEST = "drop_newest"
    """Drop the message being offered (what is already queued matters most)."""
    REJECT = "reject"
    """Refuse the message being offered, reported as ``DropReason.REJECTED``."""


class Drain(enum.Enum):
    """The order in which queued messages are sent once the connection is back."""

    FIFO = "fifo"
    """Oldest first: preserves publish order."""
    LIFO = "lifo"
    """Newest first: the latest state reaches the broker soonest."""


class Qos0Offline(enum.Enum):
    """What happens to a QoS 0 message published while offline."""

    QUEUE = "queue"
    """Queue it like any other message."""
    DROP = "drop"
    """Drop it (reported as ``DropReason.QOS0_OFFLINE``): QoS 0 promised nothing."""


_STORE_METHODS = ("add", "remove", "load", "flush", "close")


@dataclass(frozen=True)
class QueuePolicy:
    """Bounds and behaviour of the offline queue.

    ``max_messages``/``max_bytes`` bound the queue (``None`` = unbounded on that axis; bytes are
    ``Message.size``: topic + payload + properties). Both are enforced. ``store`` persists the
    queue (e.g. ``SqliteStore``); ``None`` means a fresh in-memory store per queue, so nothing
    survives the process. Note that a store instance belongs to one queue at a time.
    """

    max_messages: int | None = 10_000
    max_bytes: int | None = 16_000_000
    overflow: Overflow = Overflow.DROP_OLDEST
    drain: Drain = Drain.FIFO
    qos0_offline: Qos0Offline = Qos0Offline.QUEUE
    store: QueueStore | None = None

    def __post_init__(self) -> None:
        for name in ("max_messages", "max_bytes"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name}: must be an int >= 1 or None, got {value!r}")
            if value < 1:
                raise ValueError(f"{name}: must be >= 1 or None, got {value!r}")
        for name, kind in (
            ("overflow", Overflow),
            ("drain", Drain),
            ("qos0_offline", Qos0Offline),
        ):
            value = getattr(self, name)
            if not isinstance(value, kind):
                raise TypeError(f"{name}: must be a member of {kind.__name__}, got {value!r}")
        if self.store is not None:
            missing = [m for m in _STORE_METHODS if not callable(getattr(self.store, m, None))]
            if missing:
                raise TypeError(
                    f"store: must implement QueueStore (missing {', '.join(missing)}), "
                    f"got {self.store!r}"
                )
