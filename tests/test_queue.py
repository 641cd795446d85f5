"""Example tests of the OfflineQueue and QueuePolicy: bounds, overflow, drain order, expiry."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from rxmqtt.message import Message, PublishProperties
from rxmqtt.policies._queue import Drain, Overflow, Qos0Offline, QueuePolicy
from rxmqtt.queue import (
    DroppedMessage,
    DropReason,
    MemoryStore,
    OfflineQueue,
    QueuedMessage,
    QueueStats,
)


@dataclass
class FakeClock:
    """A settable monotonic clock."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Drops:
    """Collects on_drop reports."""

    reports: list[tuple[DroppedMessage, QueuedMessage]] = field(default_factory=list)

    def __call__(self, dropped: DroppedMessage, item: QueuedMessage) -> None:
        self.reports.append((dropped, item))

    @property
    def seqs(self) -> list[int]:
        return [item.seq for _, item in self.reports]

    @property
    def reasons(self) -> list[DropReason]:
        return [dropped.reason for dropped, _ in self.reports]


def msg(n: int, *, size: int = 1, qos: int = 1, expiry: int | None = None) -> Message:
    """Message number ``n``; ``size`` is its total Message.size when there is no expiry."""
    topic = "t"
    payload = n.to_bytes(4, "big").ljust(max(size - len(topic), 4), b".")
    return Message(
        topic, payload, qos, properties=PublishProperties(message_expiry_interval=expiry)
    )


def number(m: Message) -> int:
    return int.from_bytes(m.payload[:4], "big")


def popped_expiry(queue: OfflineQueue) -> int | None:
    """The Message Expiry Interval the next popped message carries (one must be queued)."""
    item = queue.pop()
    assert item is not None
    return item.message.properties.message_expiry_interval


def make(
    clock: FakeClock | None = None, drops: Drops | None = None, **policy: object
) -> OfflineQueue:
    return OfflineQueue(
        QueuePolicy(**policy),  # type: ignore[arg-type]
        clock=clock or FakeClock(),
        on_drop=drops,
    )


# -- QueuePolicy -----------------------------------------------------------------------------


def test_policy_defaults() -> None:
    policy = QueuePolicy()
    assert policy.max_messages == 10_000
    assert policy.max_bytes == 16_000_000
    assert policy.overflow is Overflow.DROP_OLDEST
    assert policy.drain is Drain.FIFO
    assert policy.qos0_offline is Qos0Offline.QUEUE
    assert policy.store is None


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"max_messages": 0}, ValueError, "max_messages: must be >= 1 or None, got 0"),
        ({"max_messages": -5}, ValueError, "max_messages: must be >= 1 or None, got -5"),
        ({"max_bytes": 0}, ValueError, "max_bytes: must be >= 1 or None, got 0"),
        ({"max_messages": 1.5}, TypeError, "max_messages: must be an int"),
        ({"max_messages": True}, TypeError, "max_messages: must be an int"),
        ({"overflow": "drop_oldest"}, TypeError, "overflow: must be a member of Overflow"),
        ({"drain": "fifo"}, TypeError, "drain: must be a member of Drain"),
        ({"qos0_offline": None}, TypeError, "qos0_offline: must be a member of Qos0Offline"),
        ({"store": object()}, TypeError, "store: must implement QueueStore"),
    ],
)
def test_policy_validation_names_the_argument(
    kwargs: dict[str, object], error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text.replace("(", r"\(")):
        QueuePolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_unbounded_is_allowed() -> None:
    queue = make(max_messages=None, max_bytes=None)
    for i in range(1000):
        assert queue.offer(msg(i, size=1000)) is not None
    assert len(queue) == 1000


def test_store_none_means_a_fresh_memory_store_per_queue() -> None:
    policy = QueuePolicy()
    a, b = OfflineQueue(policy), OfflineQueue(policy)
    assert isinstance(a.store, MemoryStore)
    assert a.store is not b.store


# -- overflow --------------------------------------------------------------------------------


def test_drop_oldest_keeps_the_last_100_in_order() -> None:
    drops = Drops()
    queue = make(drops=drops, max_messages=100, overflow=Overflow.DROP_OLDEST)
    for i in range(1000):
        assert queue.offer(msg(i)) is not None
    assert len(drops.reports) == 900
    assert [number(d.message) for d, _ in drops.reports] == list(range(900))
    assert set(drops.reasons) == {DropReason.OVERFLOW}
    assert [number(item.message) for item in queue.drain_all()] == list(range(900, 1000))
    assert queue.stats() == QueueStats(depth=0, bytes=0, dropped=900, drained=100, in_flight=100)


def test_drop_newest_keeps_the_first_100() -> None:
    drops = Drops()
    queue = make(drops=drops, max_messages=100, overflow=Overflow.DROP_NEWEST)
    results = [queue.offer(msg(i)) for i in range(1000)]
    assert all(r is not None for r in results[:100])
    assert all(r is None for r in results[100:])
    assert [number(d.message) for d, _ in drops.reports] == list(range(100, 1000))
    assert set(drops.reasons) == {DropReason.OVERFLOW}
    assert [number(item.message) for item in queue.drain_all()] == list(range(100))


def test_reject_refuses_new_messages_with_rejected() -> None:
    drops = Drops()
    queue = make(drops=drops, max_messages=2, overflow=Overflow.REJECT)
    token = object()
    assert queue.offer(msg(0)) is not None
    assert queue.offer(msg(1)) is not None
    assert queue.offer(msg(2), token) is None
    assert drops.reasons == [DropReason.REJECTED]
    dropped, item = drops.reports[0]
    assert number(dropped.message) == 2
    assert item.token is token
    queue.pop()
    assert queue.offer(msg(3)) is not None


def test_mixed_sizes_against_max_bytes_drop_oldest() -> None:
    drops = Drops()
    queue = make(drops=drops, max_messages=None, max_bytes=100, overflow=Overflow.DROP_OLDEST)
    queue.offer(msg(0, size=40))
    queue.offer(msg(1, size=40))
    queue.offer(msg(2, size=10))
    assert queue.bytes == 90
    # 30 more bytes: evicting the 40-byte #0 is enough (50 + 30 <= 100).
    queue.offer(msg(3, size=30))
    assert [number(d.message) for d, _ in drops.reports] == [0]
    assert queue.bytes == 80
    # 90 bytes: needs #1, #2 and #3 gone.
    queue.offer(msg(4, size=90))
    assert [number(d.message) for d, _ in drops.reports] == [0, 1, 2, 3]
    assert queue.bytes == 90
    assert len(queue) == 1


def test_mixed_sizes_against_max_bytes_drop_newest() -> None:
    drops = Drops()
    queue = make(drops=drops, max_messages=None, max_bytes=100, overflow=Overflow.DROP_NEWEST)
    queue.offer(msg(0, size=60))
    assert queue.offer(msg(1, size=50)) is None
    assert queue.offer(msg(2, size=40)) is not None  # a smaller one still fits
    assert [number(d.message) for d, _ in drops.reports] == [1]
    assert queue.bytes == 100


@pytest.mark.parametrize(
    ("overflow", "reason"),
    [
        (Overflow.DROP_OLDEST, DropReason.OVERFLOW),
        (Overflow.DROP_NEWEST, DropReason.OVERFLOW),
        (Overflow.REJECT, DropReason.REJECTED),
    ],
)
def test_message_larger_than_max_bytes_is_never_queued_and_evicts_nothing(
    overflow: Overflow, reason: DropReason
) -> None:
    drops = Drops()
    queue = make(drops=drops, max_bytes=50, overflow=overflow)
    queue.offer(msg(0, size=20))
    assert queue.offer(msg(1, size=51)) is None
    assert drops.reasons == [reason]
    assert len(queue) == 1


def test_both_bounds_are_enforced() -> None:
    queue = make(max_messages=3, max_bytes=25)
    for i in range(10):
        queue.offer(msg(i, size=10))
        assert len(queue) <= 3
        assert queue.bytes <= 25
    assert len(queue) == 2


def test_qos0_offline_drop() -> None:
    drops = Drops()
    queue = make(drops=drops, qos0_offline=Qos0Offline.DROP)
    assert queue.offer(msg(0, qos=0)) is None
    assert queue.offer(msg(1, qos=1)) is not None
    assert drops.reasons == [DropReason.QOS0_OFFLINE]


# -- drain order -----------------------------------------------------------------------------


def test_fifo_and_lifo() -> None:
    fifo = make(drain=Drain.FIFO)
    lifo = make(drain=Drain.LIFO)
    for i in range(5):
        fifo.offer(msg(i))
        lifo.offer(msg(i))
    assert [number(i.message) for i in fifo.drain_all()] == [0, 1, 2, 3, 4]
    assert [number(i.message) for i in lifo.drain_all()] == [4, 3, 2, 1, 0]


def test_lifo_drop_oldest_evicts_the_oldest() -> None:
    drops = Drops()
    queue = make(drops=drops, max_messages=3, drain=Drain.LIFO)
    for i in range(5):
        queue.offer(msg(i))
    assert [number(d.message) for d, _ in drops.reports] == [0, 1]
    assert [number(i.message) for i in queue.drain_all()] == [4, 3, 2]


def test_peek_matches_pop() -> None:
    queue = make()
    assert queue.peek() is None
    queue.offer(msg(0))
    queue.offer(msg(1))
    peeked = queue.peek()
    assert peeked is not None
    assert len(queue) == 2
    assert queue.pop() == peeked


def test_seqs_increase_and_tokens_travel() -> None:
    queue = make()
    token = object()
    first = queue.offer(msg(0), token)
    second = queue.offer(msg(1))
    assert first is not None
    assert second is not None
    assert second.seq > first.seq
    popped = queue.pop()
    assert popped is not None
    assert popped.token is token


# -- expiry ----------------------------------------------------------------------------------


def test_remaining_expiry_is_rewritten_on_pop() -> None:
    clock = FakeClock()
    queue = make(clock)
    queue.offer(msg(0, expiry=60))
    queue.offer(msg(1, expiry=60))
    queue.offer(msg(2))
    clock.advance(10)
    assert popped_expiry(queue) == 50
    clock.advance(0.5)
    assert popped_expiry(queue) == 50  # 49.5 rounded up
    assert popped_expiry(queue) is None


def test_remaining_expiry_never_rounds_to_zero() -> None:
    clock = FakeClock()
    queue = make(clock)
    queue.offer(msg(0, expiry=5))
    clock.advance(4.9)
    assert popped_expiry(queue) == 1


def test_unchanged_expiry_keeps_the_same_message() -> None:
    clock = FakeClock(0.1)
    queue = make(clock)
    offered = queue.offer(msg(0, expiry=3))
    assert offered is not None
    popped = queue.pop()
    assert popped is offered


def test_expiry_reached_exactly_is_expired() -> None:
    clock = FakeClock()
    drops = Drops()
    queue = make(clock, drops)
    queue.offer(msg(0, expiry=5))
    queue.offer(msg(1))
    clock.advance(5)
    item = queue.pop()
    assert item is not None
    assert number(item.message) == 1
    assert drops.reasons == [DropReason.EXPIRED]
    assert drops.reports[0][0].at == clock.now


def test_expire_sweeps_the_middle_of_the_queue() -> None:
    clock = FakeClock()
    drops = Drops()
    queue = make(clock, drops)
    queue.offer(msg(0))
    queue.offer(msg(1, expiry=1))
    queue.offer(msg(2, expiry=10))
    queue.offer(msg(3))
    assert queue.expire() == 0
    clock.advance(2)
    assert queue.expire() == 1
    assert [number(d.message) for d, _ in drops.reports] == [1]
    assert len(queue) == 3
    clock.advance(10)
    assert queue.expire() == 1
    assert [number(i.message) for i in queue.drain_all()] == [0, 3]
    assert queue.stats().dropped == 2


def test_zero_expiry_is_expired_at_offer() -> None:
    drops = Drops()
    queue = make(drops=drops)
    assert queue.offer(msg(0, expiry=0)) is None
    assert drops.reasons == [DropReason.EXPIRED]


def test_full_queue_drops_expired_before_evicting_live_messages() -> None:
    clock = FakeClock()
    drops = Drops()
    queue = make(clock, drops, max_messages=3, overflow=Overflow.REJECT)
    queue.offer(msg(0))
    queue.offer(msg(1, expiry=1))
    queue.offer(msg(2))
    clock.advance(1)
    assert queue.offer(msg(3)) is not None
    assert drops.reasons == [DropReason.EXPIRED]
    assert [number(i.message) for i in queue.drain_all()] == [0, 2, 3]


# -- in flight, requeue, acknowledge ---------------------------------------------------------


def test_requeue_front_goes_next_and_is_not_a_new_offer() -> None:
    for drain, expected in ((Drain.FIFO, [0, 1, 2, 3]), (Drain.LIFO, [2, 3, 1, 0])):
        queue = make(drain=drain)
        for i in range(3):
            queue.offer(msg(i))
        item = queue.pop()
        assert item is not None
        assert queue.stats().in_flight == 1
        queue.offer(msg(3))
        queue.requeue_front(item)
        stats = queue.stats()
        assert (stats.depth, stats.drained, stats.in_flight) == (4, 0, 0)
        assert [number(i.message) for i in queue.drain_all()] == expected, drain


def test_requeue_front_restores_the_original_expiry() -> None:
    clock = FakeClock()
    queue = make(clock)
    queue.offer(msg(0, expiry=60))
    clock.advance(10)
    item = queue.pop()
    assert item is not None
    assert item.message.properties.message_expiry_interval == 50
    queue.requeue_front(item)
    clock.advance(10)
    assert popped_expiry(queue) == 40


def test_requeue_front_of_an_expired_message_drops_it() -> None:
    clock = FakeClock()
    drops = Drops()
    queue = make(clock, drops)
    queue.offer(msg(0, expiry=5))
    item = queue.pop()
    assert item is not None
    clock.advance(5)
    queue.requeue_front(item)
    assert drops.reasons == [DropReason.EXPIRED]
    assert len(queue) == 0
    assert queue.stats().dropped == 1
    assert queue.stats().drained == 0


@pytest.mark.parametrize(
    ("overflow", "dropped", "left"),
    [
        (Overflow.DROP_OLDEST, [1], [0, 2]),  # the requeued stays, the oldest other goes
        (Overflow.DROP_NEWEST, [0], [1, 2]),  # otherwise the requeued itself is dropped
        (Overflow.REJECT, [0], [1, 2]),
    ],
)
def test_requeue_front_over_bounds(overflow: Overflow, dropped: list[int], left: list[int]) -> None:
    drops = Drops()
    queue = make(drops=drops, max_messages=2, overflow=overflow)
    queue.offer(msg(0))
    item = queue.pop()
    assert item is not None
    queue.offer(msg(1))
    queue.offer(msg(2))
    queue.requeue_front(item)
    assert [number(d.message) for d, _ in drops.reports] == dropped
    assert drops.reasons == [DropReason.OVERFLOW]
    assert [number(i.message) for i in queue.drain_all()] == left
    stats = queue.stats()
    assert (stats.dropped, stats.drained) == (1, 2)


def test_requeue_front_of_unknown_item_raises() -> None:
    queue = make()
    item = queue.offer(msg(0))
    assert item is not None
    with pytest.raises(ValueError, match="item: seq 1 is not in flight"):
        queue.requeue_front(item)


def test_acknowledge_and_discard() -> None:
    drops = Drops()
    queue = make(drops=drops)
    queue.offer(msg(0))
    queue.offer(msg(1))
    a, b = queue.drain_all()
    assert queue.stats().in_flight == 2
    assert queue.acknowledge(a.seq) is True
    assert queue.acknowledge(a.seq) is False
    dropped = queue.discard(b.seq, DropReason.RETRIES_EXHAUSTED)
    assert dropped is not None
    assert dropped.reason is DropReason.RETRIES_EXHAUSTED
    assert queue.discard(b.seq, DropReason.RETRIES_EXHAUSTED) is None
    assert queue.stats() == QueueStats(depth=0, bytes=0, dropped=1, drained=1, in_flight=0)
    assert drops.reasons == [DropReason.RETRIES_EXHAUSTED]


# -- clear and close -------------------------------------------------------------------------


def test_clear_reports_every_queued_message() -> None:
    drops = Drops()
    queue = make(drops=drops)
    for i in range(3):
        queue.offer(msg(i))
    reports = queue.clear(DropReason.CLEARED)
    assert [number(r.message) for r in reports] == [0, 1, 2]
    assert drops.reasons == [DropReason.CLEARED] * 3
    assert len(queue) == 0
    assert queue.bytes == 0
    assert queue.stats().dropped == 3


def test_close_reports_closed_and_refuses_later_offers() -> None:
    drops = Drops()
    queue = make(drops=drops)
    queue.offer(msg(0))
    queue.offer(msg(1))
    item = queue.pop()
    assert item is not None
    reports = queue.close()
    assert [r.reason for r in reports] == [DropReason.CLOSED]
    assert queue.closed
    assert queue.close() == []
    assert queue.offer(msg(2)) is None
    queue.requeue_front(item)
    assert drops.reasons == [DropReason.CLOSED] * 3
    assert queue.stats().dropped == 3


def test_on_drop_errors_do_not_lose_other_reports() -> None:
    seen: list[int] = []

    def on_drop(dropped: DroppedMessage, item: QueuedMessage) -> None:
        seen.append(item.seq)
        raise RuntimeError("boom")

    queue = OfflineQueue(QueuePolicy(), clock=FakeClock(), on_drop=on_drop)
    for i in range(3):
        queue.offer(msg(i))
    with pytest.raises(RuntimeError, match="boom"):
        queue.clear(DropReason.CLEARED)
    assert seen == [1, 2, 3]
    assert len(queue) == 0


def test_hundred_thousand_messages() -> None:
    queue = make(max_messages=100_000, max_bytes=None)
    for i in range(100_000):
        queue.offer(msg(i, size=64))
    assert len(queue) == 100_000
    for _ in range(100_000):
        item = queue.pop()
        assert item is not None
        queue.acknowledge(item.seq)
    assert queue.stats() == QueueStats(depth=0, bytes=0, dropped=0, drained=100_000, in_flight=0)


# -- set_policy ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overflow", "kept"),
    [
        (Overflow.DROP_OLDEST, [7, 8, 9]),
        (Overflow.DROP_NEWEST, [0, 1, 2]),
        (Overflow.REJECT, [0, 1, 2]),
    ],
)
def test_set_policy_rebounds_the_queue(overflow: Overflow, kept: list[int]) -> None:
    drops = Drops()
    queue = make(drops=drops)
    for i in range(10):
        queue.offer(msg(i))
    reports = queue.set_policy(QueuePolicy(max_messages=3, overflow=overflow))
    assert len(reports) == 7
    assert sorted(number(d.message) for d, _ in drops.reports) == sorted(set(range(10)) - set(kept))
    assert set(drops.reasons) == {DropReason.OVERFLOW}
    assert [number(i.message) for i in queue.drain_all()] == kept
    assert queue.policy.max_messages == 3


def test_set_policy_prefers_dropping_expired_messages() -> None:
    clock = FakeClock()
    drops = Drops()
    queue = make(clock, drops)
    queue.offer(msg(0))
    queue.offer(msg(1, expiry=1))
    queue.offer(msg(2))
    clock.advance(1)
    queue.set_policy(QueuePolicy(max_messages=2))
    assert drops.reasons == [DropReason.EXPIRED]
    assert [number(i.message) for i in queue.drain_all()] == [0, 2]


def test_set_policy_switches_drain_order_and_qos0_rule() -> None:
    drops = Drops()
    queue = make(drops=drops)
    for i in range(3):
        queue.offer(msg(i))
    assert queue.set_policy(QueuePolicy(drain=Drain.LIFO, qos0_offline=Qos0Offline.DROP)) == []
    assert queue.offer(msg(3, qos=0)) is None
    assert drops.reasons == [DropReason.QOS0_OFFLINE]
    assert [number(i.message) for i in queue.drain_all()] == [2, 1, 0]


def test_set_policy_cannot_swap_the_store() -> None:
    store = MemoryStore()
    queue = OfflineQueue(QueuePolicy(store=store))
    queue.set_policy(QueuePolicy(store=store, max_messages=5))
    queue.set_policy(QueuePolicy(max_messages=6))
    assert queue.store is store
    with pytest.raises(ValueError, match="store cannot be changed"):
        queue.set_policy(QueuePolicy(store=MemoryStore()))
