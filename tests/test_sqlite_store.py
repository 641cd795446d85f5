"""SqliteStore: persistence across queue (and process) restarts, in-flight reload, batching."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rxmqtt.message import Message, PublishProperties
from rxmqtt.policies._queue import Drain, Overflow, QueuePolicy
from rxmqtt.queue import (
    DroppedMessage,
    DropReason,
    MemoryStore,
    OfflineQueue,
    QueuedMessage,
    QueueStore,
    SqliteStore,
)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rich(n: int) -> Message:
    """A message using every field the store must keep."""
    return Message(
        f"devices/{n}/state",
        bytes([n % 256]) * (n % 7 + 1) + b"\x00\xff",
        qos=n % 3,
        retain=n % 2 == 0,
        properties=PublishProperties(
            message_expiry_interval=None if n % 4 else 3600,
            content_type="application/json" if n % 2 else None,
            response_topic=f"reply/{n}" if n % 3 else None,
            correlation_data=bytes([n % 256, 0]) if n % 5 else None,
            payload_format_indicator=n % 2 if n % 3 else None,
            user_properties=(("k", str(n)), ("k", "dup"), ("ünï", "çødé")) if n % 2 else (),
            subscription_identifiers=(n + 1,) if n % 6 == 0 else (),
        ),
    )


def queue_on(
    path: Path,
    *,
    wall: float = 1_000_000.0,
    clock: float = 50.0,
    on_drop: list[tuple[DroppedMessage, QueuedMessage]] | None = None,
    **policy: object,
) -> OfflineQueue:
    store = SqliteStore(path, batch_size=policy.pop("batch_size", 256))  # type: ignore[arg-type]
    return OfflineQueue(
        QueuePolicy(store=store, **policy),  # type: ignore[arg-type]
        clock=FakeClock(clock),
        wall_clock=FakeClock(wall),
        on_drop=None if on_drop is None else lambda d, i: on_drop.append((d, i)),
    )


def test_stores_satisfy_the_protocol(tmp_path: Path) -> None:
    assert isinstance(MemoryStore(), QueueStore)
    store = SqliteStore(tmp_path / "q.db")
    assert isinstance(store, QueueStore)
    store.close()
    store.close()  # idempotent


def test_reload_in_order_with_identical_content(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    first = queue_on(path)
    offered = [first.offer(rich(n)) for n in range(50)]
    assert all(item is not None for item in offered)
    closed = first.close()
    assert [r.reason for r in closed] == [DropReason.CLOSED] * 50

    second = queue_on(path)
    assert len(second) == 50
    reloaded = second.snapshot()
    assert [i.seq for i in reloaded] == [i.seq for i in offered if i is not None]
    assert [i.message for i in reloaded] == [rich(n) for n in range(50)]
    assert all(i.token is None for i in reloaded)
    new = second.offer(rich(99))
    assert new is not None
    assert new.seq == 51
    second.close()


def test_unacknowledged_popped_messages_are_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    first = queue_on(path)
    for n in range(5):
        first.offer(rich(n))
    a = first.pop()
    b = first.pop()
    c = first.pop()
    assert a is not None
    assert b is not None
    assert c is not None
    assert first.acknowledge(a.seq)
    first.discard(c.seq, DropReason.RETRIES_EXHAUSTED)
    first.close()  # b in flight, never acknowledged

    second = queue_on(path)
    assert [i.seq for i in second.snapshot()] == [b.seq, 4, 5]
    assert [i.message for i in second.drain_all()] == [rich(1), rich(3), rich(4)]
    second.close()


def test_lifo_reload_drains_newest_first(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    first = queue_on(path)
    for n in range(3):
        first.offer(rich(n))
    first.close()
    second = queue_on(path, drain=Drain.LIFO)
    assert [i.seq for i in second.drain_all()] == [3, 2, 1]
    second.close()


def test_expiry_keeps_counting_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    first = queue_on(path, wall=1000.0)
    message = Message("t", b"x", 1, properties=PublishProperties(message_expiry_interval=60))
    first.offer(message)
    first.offer(message)
    first.close()

    # 30 s of wall time later, on a fresh monotonic clock: 30 s left.
    second = queue_on(path, wall=1030.0, clock=5.0)
    item = second.pop()
    assert item is not None
    assert item.message.properties.message_expiry_interval == 30
    second.close()

    drops: list[tuple[DroppedMessage, QueuedMessage]] = []
    third = queue_on(path, wall=1060.0, clock=5.0, on_drop=drops)
    # Both messages are due: the unacknowledged popped one and the never-popped one.
    assert third.pop() is None
    assert [d.reason for d, _ in drops] == [DropReason.EXPIRED] * 2
    third.close()
    assert queue_on(path).snapshot() == []


def test_bounds_apply_when_loading(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    first = queue_on(path)
    for n in range(10):
        first.offer(rich(n))
    first.close()

    drops: list[tuple[DroppedMessage, QueuedMessage]] = []
    second = queue_on(path, on_drop=drops, max_messages=4, overflow=Overflow.DROP_OLDEST)
    assert [i.seq for i in second.snapshot()] == [7, 8, 9, 10]
    assert [(i.seq, d.reason) for d, i in drops] == [(s, DropReason.OVERFLOW) for s in range(1, 7)]
    second.close()
    assert [i.seq for i in queue_on(path).snapshot()] == [7, 8, 9, 10]

    drops.clear()
    third = queue_on(path, on_drop=drops, max_messages=2, overflow=Overflow.REJECT)
    assert [i.seq for i in third.snapshot()] == [7, 8]
    assert [(i.seq, d.reason) for d, i in drops] == [
        (9, DropReason.OVERFLOW),
        (10, DropReason.OVERFLOW),
    ]
    third.close()


def test_clear_removes_from_the_store_close_keeps(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    first = queue_on(path)
    for n in range(3):
        first.offer(rich(n))
    first.clear(DropReason.CLEARED)
    first.offer(rich(7))
    first.close()
    assert [i.message for i in queue_on(path).snapshot()] == [rich(7)]


def test_dropped_messages_leave_the_store(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    first = queue_on(path, max_messages=3)
    for n in range(10):
        first.offer(rich(n))
    first.close()
    assert [i.seq for i in queue_on(path).snapshot()] == [8, 9, 10]


def test_writes_are_batched(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "q.db", batch_size=10, flush_interval=None)
    queue = OfflineQueue(QueuePolicy(store=store))
    for n in range(25):
        queue.offer(rich(n))
    assert store.commits == 2
    assert store.pending == 5
    queue.flush()
    assert store.commits == 3
    assert store.pending == 0
    queue.flush()
    assert store.commits == 3  # nothing pending, no transaction

    queue.close()
    with sqlite3.connect(tmp_path / "q.db") as db:
        assert db.execute("SELECT COUNT(*) FROM queued_messages").fetchone()[0] == 25


def test_messages_sent_within_a_batch_never_reach_the_disk(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "q.db", batch_size=10, flush_interval=None)
    queue = OfflineQueue(QueuePolicy(store=store))
    for n in range(4):
        queue.offer(rich(n))
    for item in queue.drain_all():
        queue.acknowledge(item.seq)
    assert store.pending == 0
    queue.close()
    assert store.commits == 0


def test_flush_interval(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    store = SqliteStore(tmp_path / "q.db", batch_size=1000, flush_interval=1.0, clock=clock)
    queue = OfflineQueue(QueuePolicy(store=store))
    queue.offer(rich(0))
    queue.offer(rich(1))
    assert store.commits == 0
    clock.now = 1.0
    queue.offer(rich(2))
    assert store.commits == 1
    assert store.pending == 0
    queue.close()


def test_wal_mode(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "q.db")
    store.add(QueuedMessage(1, rich(1), 0.0))
    store.flush()
    with sqlite3.connect(tmp_path / "q.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_closed_store_refuses_writes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "q.db")
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.add(QueuedMessage(1, rich(1), 0.0))


def test_arguments_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size: must be >= 1, got 0"):
        SqliteStore(tmp_path / "q.db", batch_size=0)
    with pytest.raises(ValueError, match="flush_interval: must be >= 0 or None"):
        SqliteStore(tmp_path / "q.db", flush_interval=-1.0)


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(ValueError, match="schema version 99"):
        SqliteStore(path)


_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from rxmqtt.message import Message
    from rxmqtt.policies._queue import QueuePolicy
    from rxmqtt.queue import OfflineQueue, SqliteStore

    queue = OfflineQueue(QueuePolicy(store=SqliteStore(sys.argv[1], batch_size=64)))
    for n in range(500):
        queue.offer(Message(f"t/{n}", n.to_bytes(2, "big"), 1))
    queue.flush()
    print("flushed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_messages_survive_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout.strip() == "flushed"
    queue = queue_on(path)
    items = queue.snapshot()
    assert len(items) == 500
    assert [i.message for i in items] == [
        Message(f"t/{n}", n.to_bytes(2, "big"), 1) for n in range(500)
    ]
    queue.close()


@settings(max_examples=40, deadline=None)
@given(
    operations=st.lists(
        st.sampled_from(["offer", "offer", "offer", "pop", "ack", "requeue", "flush"]),
        max_size=60,
    ),
    max_messages=st.integers(1, 10),
    batch_size=st.integers(1, 8),
)
def test_reload_is_exactly_queued_plus_unacknowledged(
    operations: list[str], max_messages: int, batch_size: int
) -> None:
    """Whatever happened, a restart reloads the queued and in-flight messages, in seq order."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "q.db"
        queue = queue_on(path, max_messages=max_messages, batch_size=batch_size)
        in_flight: list[QueuedMessage] = []
        n = 0
        for op in operations:
            if op == "offer":
                queue.offer(rich(n))
                n += 1
            elif op == "pop":
                if (item := queue.pop()) is not None:
                    in_flight.append(item)
            elif op == "ack" and in_flight:
                queue.acknowledge(in_flight.pop(0).seq)
            elif op == "requeue" and in_flight:
                queue.requeue_front(in_flight.pop())
            elif op == "flush":
                queue.flush()
        expected = sorted(
            [(i.seq, i.message) for i in queue.snapshot()] + [(i.seq, i.message) for i in in_flight]
        )
        queue.close()
        reloaded = queue_on(path, max_messages=None)
        assert [(i.seq, i.message) for i in reloaded.snapshot()] == expected
        reloaded.close()
