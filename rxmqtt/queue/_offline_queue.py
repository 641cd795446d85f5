"""OfflineQueue: the bounded queue of messages waiting for the connection to come back.

Pure: no sockets, no event loop, no threads. Time comes from an injected clock, persistence from
an injected :class:`~rxmqtt.queue.QueueStore`, and every discarded message is reported through an
``on_drop`` callback, so the queue can be tested exhaustively with a fake clock.

Lifecycle of a message, as the connection drives it::

    offer() ──> queued ──pop()──> in flight ──acknowledge(seq)──> done (removed from the store)
                  │   ^               │ │
                  │   └─requeue_front─┘ └─discard(seq, reason)──> dropped (reported)
                  └── evicted / expired / clear() / close() ──> dropped (reported)

Every offered message ends exactly once: handed out by ``pop`` (counted in ``drained``) or
reported through ``on_drop`` (counted in ``dropped``), unless it is still queued.

Persistence and acknowledgement: ``pop()`` does *not* remove a message from the store; it moves
it "in flight". Only ``acknowledge(seq)`` (PUBACK/PUBCOMP received, QoS 0 written, or the broker
rejected it for good) or ``discard(seq, reason)`` removes it. So with a persistent store a process
that dies with messages in flight reloads them on restart and sends them again (at-least-once).
With the in-memory store acknowledging only forgets the in-flight entry. The connection must
therefore end every popped message with ``acknowledge``, ``discard`` or ``requeue_front``.

Not thread-safe: drive it from the connection's event-loop thread.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from rxmqtt.message import Message
from rxmqtt.policies._queue import Drain, Overflow, Qos0Offline, QueuePolicy
from rxmqtt.queue._stores import MemoryStore
from rxmqtt.queue._types import (
    DroppedMessage,
    DropReason,
    QueuedMessage,
    QueueStats,
    QueueStore,
)

__all__ = ["OfflineQueue"]

OnDrop = Callable[[DroppedMessage, QueuedMessage], None]

_Drops = list[tuple[QueuedMessage, DropReason]]


_NOTHING_QUEUED: deque[QueuedMessage] = deque()
"""Shared by every queue that never held a message, never added to (see ``_growable``): an
empty deque is 768 bytes, and most connections never queue one."""


class OfflineQueue:
    """A bounded queue of outgoing messages with overflow, drain-order and expiry policies.

    ``policy`` gives the bounds (``max_messages`` and ``max_bytes``, both enforced), the overflow
    rule, the drain order and the store. ``clock`` is the queue's time source (monotonic seconds;
    ``enqueued_at`` and ``DroppedMessage.at`` are on it); ``wall_clock`` converts to and from the
    wall-clock times a persistent store keeps. ``on_drop(dropped, item)`` is called once for every
    discarded message, after the queue's state is updated (``item.token`` identifies the
    publish); it must not raise (if it does, the other drops are still reported and the first
    exception is re-raised).

    Constructed on a store that already holds messages (a restarted process), the queue loads
    them first, in ``seq`` order, applying the bounds (excess reported as ``OVERFLOW``); new
    messages get ``seq`` numbers after the largest loaded one.

    Expiry (MQTT 5 Message Expiry Interval) is checked lazily: ``pop``/``peek`` skip and report
    expired messages at the head, a full queue first drops expired messages before evicting live
    ones, and ``expire()`` sweeps the whole queue (O(1) when nothing can have expired yet). Until
    swept, expired messages still count in ``len``/``bytes``.

    Costs: ``offer``/``pop``/``requeue_front``/``acknowledge`` are O(1) (amortised, plus the
    evictions they cause); ``expire`` is O(n) only when something expired.
    """

    def __init__(
        self,
        policy: QueuePolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        on_drop: OnDrop | None = None,
    ) -> None:
        if not isinstance(policy, QueuePolicy):
            raise TypeError(f"policy: must be a QueuePolicy, got {policy!r}")
        self._store: QueueStore = policy.store if policy.store is not None else MemoryStore()
        # The memory store keeps nothing: skip building wall-clock copies for it.
        self._persistent = not isinstance(self._store, MemoryStore)
        self._clock = clock
        self._wall_clock = wall_clock
        self._on_drop = on_drop
        self._use_policy(policy)
        # Arrival order: left = oldest, right = newest. FIFO pops left, LIFO pops right;
        # requeue_front pushes on the popping end.
        self._items: deque[QueuedMessage] = _NOTHING_QUEUED
        self._bytes = 0
        self._dropped = 0
        self._drained = 0
        self._in_flight: dict[int, QueuedMessage] = {}
        self._next_seq = 1
        # A lower bound on the earliest expiry deadline among queued messages: expire() is a
        # no-op until the clock reaches it.
        self._next_deadline = math.inf
        self._closed = False
        self._load()

    def _use_policy(self, policy: QueuePolicy) -> None:
        """Cache the policy's settings as plain attributes (the hot paths read them)."""
        self._policy = policy
        self._max_messages = policy.max_messages
        self._max_bytes = policy.max_bytes
        self._drop_oldest = policy.overflow is Overflow.DROP_OLDEST
        self._full_reason = (
            DropReason.REJECTED if policy.overflow is Overflow.REJECT else DropReason.OVERFLOW
        )
        self._fifo = policy.drain is Drain.FIFO
        self._drop_qos0 = policy.qos0_offline is Qos0Offline.DROP

    def set_policy(self, policy: QueuePolicy) -> list[DroppedMessage]:
        """Apply a new policy to the live queue and return (and report) what no longer fits.

        Bounds, overflow rule, drain order and the QoS 0 rule change at once. If the queue is now
        over a bound, expired messages go first (``EXPIRED``), then ``DROP_OLDEST`` evicts the
        oldest messages and ``DROP_NEWEST``/``REJECT`` the newest ones (``OVERFLOW``), keeping
        what was accepted first. Switching the drain order keeps the messages where they are:
        the next ``pop`` takes from the other end. The store cannot be swapped on a live queue:
        ``policy.store`` must be None (keep the current store) or the current store, else
        ``ValueError``. In-flight messages are not affected.
        """
        if not isinstance(policy, QueuePolicy):
            raise TypeError(f"policy: must be a QueuePolicy, got {policy!r}")
        if policy.store is not None and policy.store is not self._store:
            raise ValueError(
                f"policy: the store cannot be changed on a live queue "
                f"(current {self._store!r}, got {policy.store!r})"
            )
        self._use_policy(policy)
        now = self._clock()
        drops: _Drops = []
        if not self._within_bounds():
            self._expire_into(now, drops)
        items = self._items
        while not self._within_bounds():
            victim = items.popleft() if self._drop_oldest else items.pop()
            self._drop(victim, DropReason.OVERFLOW, drops)
        if not items:
            self._next_deadline = math.inf
        return self._report(drops, now) if drops else []

    # -- inspection -------------------------------------------------------------------------

    @property
    def policy(self) -> QueuePolicy:
        """The policy this queue enforces."""
        return self._policy

    @property
    def store(self) -> QueueStore:
        """The store this queue persists to (a ``MemoryStore`` when the policy has none)."""
        return self._store

    @property
    def closed(self) -> bool:
        """True after ``close()``."""
        return self._closed

    @property
    def in_flight(self) -> int:
        """Messages popped and not yet acknowledged, discarded or requeued."""
        return len(self._in_flight)

    def __len__(self) -> int:
        """Messages queued now (including expired ones not yet swept)."""
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def snapshot(self) -> list[QueuedMessage]:
        """The queued messages in drain order (next first), as stored: O(n), for inspection."""
        return list(self._items) if self._fifo else list(reversed(self._items))

    def stats(self) -> QueueStats:
        """A snapshot: depth, bytes, dropped, drained, in flight."""
        return QueueStats(
            depth=len(self._items),
            bytes=self._bytes,
            dropped=self._dropped,
            drained=self._drained,
            in_flight=len(self._in_flight),
        )

    # -- adding -----------------------------------------------------------------------------

    def offer(self, message: Message, token: object | None = None) -> QueuedMessage | None:
        """Queue ``message``; return its ``QueuedMessage``, or None if it was not queued.

        When the queue is full (either bound), expired messages are dropped first; then
        ``DROP_OLDEST`` evicts the oldest messages until this one fits, ``DROP_NEWEST`` drops
        this one (``OVERFLOW``) and ``REJECT`` refuses it (``REJECTED``). A message larger than
        ``max_bytes`` on its own is never queued (``OVERFLOW``, or ``REJECTED`` under
        ``REJECT``). A message with an expiry interval <= 0 is dropped as ``EXPIRED``; a QoS 0
        message under ``Qos0Offline.DROP`` as ``QOS0_OFFLINE``; anything after ``close()`` as
        ``CLOSED``. Every discard, of this message or of evicted ones, is reported via
        ``on_drop``.
        """
        now = self._clock()
        seq = self._next_seq
        self._next_seq = seq + 1
        item = QueuedMessage(seq, message, now, token)
        if self._closed:
            self._refuse(item, DropReason.CLOSED, now)
            return None
        if self._drop_qos0 and message.qos == 0:
            self._refuse(item, DropReason.QOS0_OFFLINE, now)
            return None
        interval = message.properties.message_expiry_interval
        if interval is not None and interval <= 0:
            self._refuse(item, DropReason.EXPIRED, now)
            return None
        size = message.size
        drops: _Drops = []
        if not self._fits(size) and not self._make_room(size, now, drops):
            self._dropped += 1
            drops.append((item, self._full_reason))
            self._report(drops, now)
            return None
        self._growable().append(item)
        self._admitted(item, size)
        if self._persistent:
            self._store.add(QueuedMessage(seq, message, self._wall_clock()))
        if drops:
            self._report(drops, now)
        return item

    def requeue_front(self, item: QueuedMessage) -> None:
        """Put back a popped message so that it is the next one ``pop`` returns.

        For a message the wire refused momentarily. It keeps its ``seq``, token and original
        enqueue time (its expiry keeps counting) and is not a new offer: ``drained`` goes back
        down by one. If it expired meanwhile it is dropped (``EXPIRED``). If messages offered
        while it was out fill the queue, the overflow rule applies as for an offer:
        ``DROP_OLDEST`` evicts the oldest other messages, ``DROP_NEWEST`` and ``REJECT`` drop the
        requeued message itself (reported as ``OVERFLOW``). After ``close()`` it is reported as
        ``CLOSED`` (and kept in a persistent store).

        Raises ``ValueError`` if ``item`` is not in flight (never popped, or already ended).
        """
        original = self._in_flight.pop(item.seq, None)
        if original is None:
            raise ValueError(f"item: seq {item.seq} is not in flight (popped and not ended)")
        self._drained -= 1
        now = self._clock()
        if self._closed:
            self._dropped += 1
            self._report([(original, DropReason.CLOSED)], now)
            return
        deadline = _deadline(original)
        if deadline is not None and now >= deadline:
            self._forget_store(original.seq)
            self._dropped += 1
            self._report([(original, DropReason.EXPIRED)], now)
            return
        size = original.message.size
        drops: _Drops = []
        if not self._fits(size) and not self._make_room(size, now, drops):
            self._forget_store(original.seq)
            self._dropped += 1
            drops.append((original, DropReason.OVERFLOW))
            self._report(drops, now)
            return
        if self._fifo:
            self._growable().appendleft(original)
        else:
            self._growable().append(original)
        self._admitted(original, size)
        if drops:
            self._report(drops, now)

    # -- taking -----------------------------------------------------------------------------

    def pop(self) -> QueuedMessage | None:
        """Hand out the next message by drain order (FIFO: oldest; LIFO: newest), or None.

        Expired messages met on the way are dropped and reported (``EXPIRED``). The returned
        item's message carries the *remaining* Message Expiry Interval, as MQTT 5 requires of a
        forwarded message: whole seconds rounded **up** (a message with 0.3 s left is sent with
        1, never 0 — brokers such as Mosquitto read 0 as "never expires"), never more than the
        original. An interval that is exactly used up counts as expired. Messages without an
        expiry are returned unchanged.

        The message moves in flight: it stays in a persistent store until
        ``acknowledge(seq)`` or ``discard(seq, reason)``; ``requeue_front(item)`` puts it back.
        """
        return self._head(take=True)

    def peek(self) -> QueuedMessage | None:
        """The message ``pop`` would return next (expiry rewritten), without taking it.

        Like ``pop`` it drops and reports expired messages at the head, so that ``peek`` and
        ``pop`` agree.
        """
        return self._head(take=False)

    def pop_if(self, accept: Callable[[Message], bool]) -> QueuedMessage | None:
        """``pop`` when ``accept(message)`` says the next message may go now, else None (it
        stays). One look at the head where ``peek`` then ``pop`` take two: a publisher draining
        into the broker's window asks once per acknowledgement."""
        return self._head(take=True, accept=accept)

    def _head(
        self, *, take: bool, accept: Callable[[Message], bool] | None = None
    ) -> QueuedMessage | None:
        """The next message by drain order once the expired ones at the head are dropped (and
        reported); with ``take`` (and ``accept`` agreeing) it leaves the queue and moves in
        flight."""
        now = self._clock()
        drops: _Drops = []
        result: QueuedMessage | None = None
        items = self._items
        while items:
            item = items[0] if self._fifo else items[-1]
            remaining = _remaining(item, now)
            expired = remaining is not None and remaining <= 0
            if not expired and accept is not None and not accept(item.message):
                break
            if expired or take:
                if self._fifo:
                    items.popleft()
                else:
                    items.pop()
            if expired:
                self._drop(item, DropReason.EXPIRED, drops)
                continue
            if take:
                self._bytes -= item.message.size
                self._in_flight[item.seq] = item
                self._drained += 1
            result = _with_remaining(item, remaining)
            break
        if not items:
            self._next_deadline = math.inf
        if drops:
            self._report(drops, now)
        return result

    def drain_all(self) -> list[QueuedMessage]:
        """``pop`` until empty; every returned message is in flight (see ``pop``)."""
        out: list[QueuedMessage] = []
        while (item := self.pop()) is not None:
            out.append(item)
        return out

    # -- ending in-flight messages ----------------------------------------------------------

    def acknowledge(self, seq: int) -> bool:
        """End an in-flight message: delivered (or finally rejected by the broker).

        Removes it from the persistent store. Returns False if ``seq`` was not in flight
        (already ended, or never popped), which is harmless.
        """
        if self._in_flight.pop(seq, None) is None:
            return False
        self._forget_store(seq)
        return True

    def discard(self, seq: int, reason: DropReason) -> DroppedMessage | None:
        """Drop an in-flight message a policy gave up on (e.g. ``RETRIES_EXHAUSTED``).

        It is reported via ``on_drop``, counted in ``dropped`` instead of ``drained``, and
        removed from the store. Returns None if ``seq`` was not in flight.
        """
        item = self._in_flight.pop(seq, None)
        if item is None:
            return None
        self._drained -= 1
        self._dropped += 1
        self._forget_store(seq)
        return self._report([(item, reason)], self._clock())[0]

    # -- sweeping ---------------------------------------------------------------------------

    def expire(self) -> int:
        """Drop (and report ``EXPIRED``) every queued message whose expiry has elapsed now.

        Returns how many. O(1) when nothing can have expired yet, O(n) otherwise.
        """
        now = self._clock()
        drops: _Drops = []
        self._expire_into(now, drops)
        if drops:
            self._report(drops, now)
        return len(drops)

    def clear(self, reason: DropReason, *, keep_persisted: bool = False) -> list[DroppedMessage]:
        """Drop every queued message with ``reason``, report each, and return the reports.

        The messages are removed from the store too, unless ``keep_persisted`` (used by
        ``close``, so that a persistent store still has them after a restart). In-flight
        messages are not affected.
        """
        if not isinstance(reason, DropReason):
            raise TypeError(f"reason: must be a DropReason, got {reason!r}")
        now = self._clock()
        items = self._items
        self._items = _NOTHING_QUEUED
        self._bytes = 0
        self._next_deadline = math.inf
        self._dropped += len(items)
        if not keep_persisted:
            for item in items:
                self._forget_store(item.seq)
        return self._report([(item, reason) for item in items], now)

    def close(self) -> list[DroppedMessage]:
        """The application is closing: report every queued message as ``CLOSED``, close the store.

        With a persistent store the queued and the in-flight (unacknowledged) messages stay
        stored and are loaded again by the next queue on that store; the reports tell the
        application that they were not sent in this run. Afterwards ``offer`` and
        ``requeue_front`` report ``CLOSED``. Idempotent (a second call returns ``[]``).
        """
        if self._closed:
            return []
        try:
            return self.clear(DropReason.CLOSED, keep_persisted=True)
        finally:
            self._closed = True
            self._store.close()

    def flush(self) -> None:
        """Make the store's buffered writes durable now (e.g. from a periodic housekeeping tick)."""
        if not self._closed:
            self._store.flush()

    @property
    def bytes(self) -> int:
        """Bytes queued now (sum of ``Message.size``), the quantity ``max_bytes`` bounds."""
        return self._bytes

    # -- internals --------------------------------------------------------------------------

    def _fits(self, size: int) -> bool:
        max_messages = self._max_messages
        max_bytes = self._max_bytes
        return (max_messages is None or len(self._items) < max_messages) and (
            max_bytes is None or self._bytes + size <= max_bytes
        )

    def _within_bounds(self) -> bool:
        max_messages = self._max_messages
        max_bytes = self._max_bytes
        return (max_messages is None or len(self._items) <= max_messages) and (
            max_bytes is None or self._bytes <= max_bytes
        )

    def _make_room(self, size: int, now: float, drops: _Drops) -> bool:
        """Free room for ``size`` bytes: expired messages first, then evict if DROP_OLDEST.

        Returns whether it fits now. Never evicts live messages for a message that could not fit
        even in an empty queue, nor under DROP_NEWEST/REJECT.
        """
        self._expire_into(now, drops)
        if self._fits(size):
            return True
        if not self._drop_oldest or (self._max_bytes is not None and size > self._max_bytes):
            return False
        items = self._items
        while not self._fits(size):
            self._drop(items.popleft(), DropReason.OVERFLOW, drops)
        if not items:
            self._next_deadline = math.inf
        return True

    def _growable(self) -> deque[QueuedMessage]:
        """The items, to add to: a queue that never held anything shares one empty deque."""
        if self._items is _NOTHING_QUEUED:
            self._items = deque()
        return self._items

    def _admitted(self, item: QueuedMessage, size: int) -> None:
        self._bytes += size
        deadline = _deadline(item)
        if deadline is not None and deadline < self._next_deadline:
            self._next_deadline = deadline

    def _expire_into(self, now: float, drops: _Drops) -> None:
        if now < self._next_deadline:
            return
        kept: deque[QueuedMessage] = deque()
        next_deadline = math.inf
        for item in self._items:
            deadline = _deadline(item)
            if deadline is None:
                kept.append(item)
            elif now >= deadline:
                self._drop(item, DropReason.EXPIRED, drops)
            else:
                kept.append(item)
                next_deadline = min(next_deadline, deadline)
        self._items = kept
        self._next_deadline = next_deadline

    def _drop(self, item: QueuedMessage, reason: DropReason, drops: _Drops) -> None:
        """Count ``item``, already out of the queue, as dropped for ``reason`` (reported later
        from ``drops``)."""
        self._bytes -= item.message.size
        self._forget_store(item.seq)
        self._dropped += 1
        drops.append((item, reason))

    def _refuse(self, item: QueuedMessage, reason: DropReason, now: float) -> None:
        self._dropped += 1
        self._report([(item, reason)], now)

    def _forget_store(self, seq: int) -> None:
        if self._persistent and not self._closed:
            self._store.remove(seq)

    def _report(self, drops: _Drops, now: float) -> list[DroppedMessage]:
        reports = [DroppedMessage(item.message, reason, now) for item, reason in drops]
        on_drop = self._on_drop
        if on_drop is not None:
            first_error: Exception | None = None
            for report, (item, _) in zip(reports, drops, strict=True):
                try:
                    on_drop(report, item)
                except Exception as exc:  # keep reporting the others; re-raise the first
                    if first_error is None:
                        first_error = exc
            if first_error is not None:
                raise first_error
        return reports

    def _load(self) -> None:
        """Load what a persistent store holds (a restarted process), applying the bounds."""
        stored = self._store.load()
        if not stored:
            return
        now = self._clock()
        wall_now = self._wall_clock()
        drops: _Drops = []
        for entry in stored:
            age = max(0.0, wall_now - entry.enqueued_at)
            item = QueuedMessage(entry.seq, entry.message, now - age)
            size = item.message.size
            if not self._fits(size) and not self._make_room(size, now, drops):
                self._forget_store(item.seq)
                self._dropped += 1
                drops.append((item, DropReason.OVERFLOW))
                continue
            self._growable().append(item)
            self._admitted(item, size)
        self._next_seq = max(entry.seq for entry in stored) + 1
        if drops:
            self._report(drops, now)


def _deadline(item: QueuedMessage) -> float | None:
    interval = item.message.properties.message_expiry_interval
    return None if interval is None else item.enqueued_at + interval


def _remaining(item: QueuedMessage, now: float) -> float | None:
    """Seconds of expiry left at ``now`` (<= 0: expired), or None if it never expires."""
    interval = item.message.properties.message_expiry_interval
    return None if interval is None else item.enqueued_at + interval - now


def _with_remaining(item: QueuedMessage, remaining: float | None) -> QueuedMessage:
    """``item`` with its expiry interval rewritten to the whole seconds left, rounded up."""
    if remaining is None:
        return item
    message = item.message
    interval = message.properties.message_expiry_interval
    assert interval is not None
    left = min(math.ceil(remaining), interval)
    if left == interval:
        return item
    properties = replace(message.properties, message_expiry_interval=left)
    return QueuedMessage(
        item.seq, replace(message, properties=properties), item.enqueued_at, item.token
    )
