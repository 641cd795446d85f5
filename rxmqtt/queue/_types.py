"""Value types of the offline queue: queued items, drop reports, statistics, the store protocol.

These are plain frozen, slotted dataclasses so that a queued message costs as little memory as
possible (the queue may hold 100,000 of them on a small device) and so that they can be compared
in tests.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from rxmqtt.message import Message


class DropReason(enum.Enum):
    """Why a message was discarded instead of being sent (or, for ``UNMATCHED``, delivered).
    Every discard is reported with one."""

    OVERFLOW = "overflow"
    """The queue was full (``max_messages`` or ``max_bytes``) and the overflow policy evicted it
    (``DROP_OLDEST``: an older message; ``DROP_NEWEST``: the new one), or it is larger than
    ``max_bytes`` on its own."""
    EXPIRED = "expired"
    """Its MQTT 5 Message Expiry Interval elapsed while it waited; it is never sent stale."""
    REJECTED = "rejected"
    """Refused at enqueue because the queue was full and the policy is ``Overflow.REJECT``."""
    CLOSED = "closed"
    """Still queued when the application closed the connection (or offered after close)."""
    QOS0_OFFLINE = "qos0_offline"
    """A QoS 0 message offered while offline under ``Qos0Offline.DROP``."""
    CLEARED = "cleared"
    """Discarded on purpose by the application (``OfflineQueue.clear``)."""
    RETRIES_EXHAUSTED = "retries_exhausted"
    """Handed out, but the publish retry policy gave up on it (``OfflineQueue.discard``)."""
    UNMATCHED = "unmatched"
    """Received, but no ``messages()`` subscription took it (not even within the grace period
    after a CONNACK) and nobody observed ``Connection.unmatched_messages``."""
    REFUSED = "refused"
    """The broker's limits forbid it: its CONNACK said so (the message was never sent), or it
    closed the connection over this message twice (see ``PublishRefusedError``)."""
    UNREAD = "unread"
    """A received message no reader took: an ``async for`` loop over ``messages()`` fell its
    buffer behind (the oldest waiting one is dropped), or the backlog of a ``subscribe()``d
    filter without a reader overflowed or was released by ``unsubscribe()``/``close()``."""


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A message held by the offline queue.

    ``seq`` is a monotonically increasing id, unique within a store (it is the store's key and
    survives restarts with a persistent store). ``enqueued_at`` is on the queue's clock
    (``time.monotonic`` by default) for items the queue hands out; items passed to and loaded
    from a :class:`QueueStore` carry wall-clock time (``time.time()``) instead, because monotonic
    clocks do not survive a process restart. ``token`` is an opaque handle the connection attaches
    (e.g. the publish observable to complete); it is never persisted.
    """

    seq: int
    message: Message
    enqueued_at: float
    token: object | None = None


@dataclass(frozen=True, slots=True)
class DroppedMessage:
    """A message a policy discarded, with why and when (``at`` is on the queue's clock)."""

    message: Message
    reason: DropReason
    at: float


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A snapshot of the queue.

    ``depth``/``bytes``: messages and bytes (``Message.size``) waiting now. ``dropped``: messages
    discarded so far. ``drained``: messages handed out by ``pop`` and not put back (includes the
    ``in_flight`` ones, popped but not yet acknowledged). Every offered message is counted in
    exactly one of ``depth``, ``drained`` and ``dropped``.
    """

    depth: int
    bytes: int
    dropped: int
    drained: int
    in_flight: int = 0


@runtime_checkable
class QueueStore(Protocol):
    """Where queued messages are persisted (or not) so that they survive the process.

    The :class:`~rxmqtt.queue.OfflineQueue` keeps its own in-memory index and tells the store
    about every change; the store only has to remember and give back. Items passed to ``add`` and
    returned by ``load`` carry ``enqueued_at`` as wall-clock seconds (``time.time()``) and no
    token. A store may buffer writes; ``flush`` makes them durable and ``close`` flushes too.

    A popped message stays in the store until the queue is told it was acknowledged (or
    discarded), so a process that dies with messages in flight re-sends them after a restart
    (at-least-once).
    """

    def add(self, item: QueuedMessage) -> None:
        """Remember ``item`` (keyed by ``item.seq``)."""
        ...

    def remove(self, seq: int) -> None:
        """Forget the item with this ``seq`` (no error if unknown)."""
        ...

    def load(self) -> list[QueuedMessage]:
        """Every remembered item, in ``seq`` order (called once, when a queue starts)."""
        ...

    def flush(self) -> None:
        """Make buffered changes durable now."""
        ...

    def close(self) -> None:
        """Flush and release resources. Idempotent."""
        ...
