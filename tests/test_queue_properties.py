"""Property tests of the OfflineQueue: random policies and random offers/pops/requeues/clock moves.

A hypothesis state machine drives a real queue and a small reference model side by side (the
model states the documented semantics as plainly as possible) and checks, after every step:
both bounds hold, ``bytes`` is the sum of the queued sizes, the queue's contents and drain order
match the model, every drop is reported exactly once with the right reason, and every handed-out
message still had expiry left and carries the remaining interval. At the end ``close()`` reports
what is still queued, and every offered message has ended exactly once.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from rxmqtt.message import Message, PublishProperties
from rxmqtt.policies._queue import Drain, Overflow, Qos0Offline, QueuePolicy
from rxmqtt.queue import DroppedMessage, DropReason, OfflineQueue, QueuedMessage


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


policies = st.builds(
    QueuePolicy,
    max_messages=st.one_of(st.none(), st.integers(1, 8)),
    max_bytes=st.one_of(st.none(), st.integers(10, 80)),
    overflow=st.sampled_from(Overflow),
    drain=st.sampled_from(Drain),
    qos0_offline=st.sampled_from(Qos0Offline),
)

messages = st.builds(
    lambda n, qos, expiry: Message(
        "t", b"x" * n, qos, properties=PublishProperties(message_expiry_interval=expiry)
    ),
    st.integers(0, 40),
    st.integers(0, 2),
    st.one_of(st.none(), st.none(), st.integers(0, 8)),
)


@dataclass
class Entry:
    """The model's view of one offered message."""

    seq: int
    message: Message
    enqueued_at: float

    @property
    def size(self) -> int:
        return self.message.size

    @property
    def deadline(self) -> float | None:
        interval = self.message.properties.message_expiry_interval
        return None if interval is None else self.enqueued_at + interval


class QueueMachine(RuleBasedStateMachine):
    """Real queue vs. reference model."""

    popped = Bundle("popped")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.reports: list[tuple[DroppedMessage, QueuedMessage]] = []

    @initialize(policy=policies)
    def start(self, policy: QueuePolicy) -> None:
        self.policy = policy
        self.queue = OfflineQueue(policy, clock=self.clock, on_drop=self._on_drop)
        self.model: deque[Entry] = deque()  # arrival order: left oldest
        self.entries: dict[int, Entry] = {}
        self.in_flight: dict[int, Entry] = {}
        self.outcome: dict[int, str] = {}  # seq -> "handed" | "dropped:<reason>"
        self.next_seq = 1
        self.closed = False

    # -- helpers ------------------------------------------------------------------------------

    def _on_drop(self, dropped: DroppedMessage, item: QueuedMessage) -> None:
        self.reports.append((dropped, item))

    def take_reports(self) -> list[tuple[int, DropReason]]:
        out = [(item.seq, dropped.reason) for dropped, item in self.reports]
        for dropped, item in self.reports:
            assert dropped.message == self.entries[item.seq].message
            assert dropped.at == self.clock.now
        self.reports.clear()
        return out

    def expired(self, entry: Entry) -> bool:
        deadline = entry.deadline
        return deadline is not None and self.clock.now >= deadline

    def fits(self, size: int) -> bool:
        p = self.policy
        return (p.max_messages is None or len(self.model) < p.max_messages) and (
            p.max_bytes is None or sum(e.size for e in self.model) + size <= p.max_bytes
        )

    def make_room(self, size: int, expected: list[tuple[int, DropReason]]) -> bool:
        for entry in [e for e in self.model if self.expired(e)]:
            self.model.remove(entry)
            expected.append((entry.seq, DropReason.EXPIRED))
        if self.fits(size):
            return True
        p = self.policy
        if p.overflow is not Overflow.DROP_OLDEST or (
            p.max_bytes is not None and size > p.max_bytes
        ):
            return False
        while not self.fits(size):
            expected.append((self.model.popleft().seq, DropReason.OVERFLOW))
        return True

    def end(self, seq: int, outcome: str) -> None:
        assert seq not in self.outcome, f"seq {seq} ended twice: {self.outcome[seq]}, {outcome}"
        self.outcome[seq] = outcome

    def record_drops(self, expected: list[tuple[int, DropReason]]) -> None:
        assert self.take_reports() == expected
        for seq, reason in expected:
            self.end(seq, f"dropped:{reason.value}")

    def check_handed_out(self, got: QueuedMessage, entry: Entry) -> None:
        assert got.seq == entry.seq
        assert got.enqueued_at == entry.enqueued_at
        interval = entry.message.properties.message_expiry_interval
        sent = got.message.properties.message_expiry_interval
        if interval is None:
            assert got.message == entry.message
        else:
            assert entry.deadline is not None
            remaining = entry.deadline - self.clock.now
            assert remaining > 0
            assert sent == min(math.ceil(remaining), interval)
            assert sent is not None
            assert 1 <= sent <= interval
            assert got.message.topic == entry.message.topic
            assert got.message.payload == entry.message.payload

    # -- rules --------------------------------------------------------------------------------

    @rule(message=messages)
    def offer(self, message: Message) -> None:
        seq = self.next_seq
        self.next_seq += 1
        entry = Entry(seq, message, self.clock.now)
        self.entries[seq] = entry
        result = self.queue.offer(message, token=("token", seq))
        expected: list[tuple[int, DropReason]] = []
        interval = message.properties.message_expiry_interval
        admitted = False
        if self.closed:
            expected.append((seq, DropReason.CLOSED))
        elif self.policy.qos0_offline is Qos0Offline.DROP and message.qos == 0:
            expected.append((seq, DropReason.QOS0_OFFLINE))
        elif interval is not None and interval <= 0:
            expected.append((seq, DropReason.EXPIRED))
        elif self.fits(entry.size) or self.make_room(entry.size, expected):
            admitted = True
            self.model.append(entry)
        else:
            reason = (
                DropReason.REJECTED
                if self.policy.overflow is Overflow.REJECT
                else DropReason.OVERFLOW
            )
            expected.append((seq, reason))
        if admitted:
            assert result is not None
            assert result.seq == seq
            assert result.token == ("token", seq)
        else:
            assert result is None
        self.record_drops(expected)

    def _pop_expected(self) -> tuple[Entry | None, list[tuple[int, DropReason]]]:
        expected: list[tuple[int, DropReason]] = []
        fifo = self.policy.drain is Drain.FIFO
        while self.model:
            entry = self.model.popleft() if fifo else self.model.pop()
            if self.expired(entry):
                expected.append((entry.seq, DropReason.EXPIRED))
                continue
            return entry, expected
        return None, expected

    @rule(target=popped)
    def pop(self) -> int:
        got = self.queue.pop()
        entry, expected = self._pop_expected()
        self.record_drops(expected)
        if entry is None:
            assert got is None
            return -1
        assert got is not None
        self.check_handed_out(got, entry)
        assert got.token == ("token", entry.seq)
        self.in_flight[entry.seq] = entry
        self.end(entry.seq, "handed")
        return entry.seq

    @rule()
    def peek(self) -> None:
        got = self.queue.peek()
        entry, expected = self._pop_expected()
        self.record_drops(expected)
        if entry is None:
            assert got is None
            return
        assert got is not None
        self.check_handed_out(got, entry)
        if self.policy.drain is Drain.FIFO:
            self.model.appendleft(entry)
        else:
            self.model.append(entry)

    @rule(seconds=st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 7.5]))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule()
    def expire(self) -> None:
        count = self.queue.expire()
        expected = [(e.seq, DropReason.EXPIRED) for e in self.model if self.expired(e)]
        self.model = deque(e for e in self.model if not self.expired(e))
        assert count == len(expected)
        self.record_drops(expected)

    @rule(seq=consumes(popped))
    def requeue_front(self, seq: int) -> None:
        if seq not in self.in_flight:
            return
        entry = self.in_flight.pop(seq)
        del self.outcome[seq]  # no longer handed out
        self.queue.requeue_front(QueuedMessage(seq, entry.message, entry.enqueued_at))
        expected: list[tuple[int, DropReason]] = []
        if self.closed:
            expected.append((seq, DropReason.CLOSED))
        elif self.expired(entry):
            expected.append((seq, DropReason.EXPIRED))
        elif self.fits(entry.size) or self.make_room(entry.size, expected):
            if self.policy.drain is Drain.FIFO:
                self.model.appendleft(entry)
            else:
                self.model.append(entry)
        else:
            expected.append((seq, DropReason.OVERFLOW))
        self.record_drops(expected)

    @rule(policy=policies)
    def set_policy(self, policy: QueuePolicy) -> None:
        reports = self.queue.set_policy(policy)
        self.policy = policy
        expected: list[tuple[int, DropReason]] = []

        def within() -> bool:
            return (policy.max_messages is None or len(self.model) <= policy.max_messages) and (
                policy.max_bytes is None or sum(e.size for e in self.model) <= policy.max_bytes
            )

        if not within():
            for entry in [e for e in self.model if self.expired(e)]:
                self.model.remove(entry)
                expected.append((entry.seq, DropReason.EXPIRED))
        while not within():
            victim = (
                self.model.popleft()
                if policy.overflow is Overflow.DROP_OLDEST
                else self.model.pop()
            )
            expected.append((victim.seq, DropReason.OVERFLOW))
        assert [r.reason for r in reports] == [reason for _, reason in expected]
        self.record_drops(expected)

    @rule(seq=consumes(popped))
    def acknowledge(self, seq: int) -> None:
        known = seq in self.in_flight
        assert self.queue.acknowledge(seq) is known
        self.in_flight.pop(seq, None)

    @rule(seq=consumes(popped))
    def discard(self, seq: int) -> None:
        result = self.queue.discard(seq, DropReason.RETRIES_EXHAUSTED)
        if seq not in self.in_flight:
            assert result is None
            return
        assert result is not None
        del self.in_flight[seq]
        del self.outcome[seq]
        self.record_drops([(seq, DropReason.RETRIES_EXHAUSTED)])

    def close(self) -> None:
        """Not a rule (it would end most runs early): teardown calls it; examples test after."""
        reports = self.queue.close()
        expected = [] if self.closed else [(e.seq, DropReason.CLOSED) for e in self.model]
        assert [r.reason for r in reports] == [reason for _, reason in expected]
        self.model.clear()
        self.closed = True
        self.record_drops(expected)

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def bounds_hold(self) -> None:
        if not hasattr(self, "queue"):
            return
        p = self.policy
        if p.max_messages is not None:
            assert len(self.queue) <= p.max_messages
        if p.max_bytes is not None:
            assert self.queue.bytes <= p.max_bytes

    @invariant()
    def matches_model(self) -> None:
        if not hasattr(self, "queue"):
            return
        order = list(self.model) if self.policy.drain is Drain.FIFO else list(reversed(self.model))
        assert [i.seq for i in self.queue.snapshot()] == [e.seq for e in order]
        assert self.queue.bytes == sum(e.size for e in self.model)
        stats = self.queue.stats()
        assert stats.depth == len(self.model)
        assert stats.in_flight == len(self.in_flight)
        dropped = sum(1 for o in self.outcome.values() if o.startswith("dropped"))
        handed = sum(1 for o in self.outcome.values() if o == "handed")
        assert stats.dropped == dropped
        assert stats.drained == handed
        assert stats.depth + stats.drained + stats.dropped == self.next_seq - 1

    def teardown(self) -> None:
        if not hasattr(self, "queue"):
            return
        self.close()
        # Every offered message ended exactly once: handed out or reported dropped.
        assert set(self.outcome) == set(range(1, self.next_seq))


QueueMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
TestQueueMachine = QueueMachine.TestCase


# -- simpler, model-free properties ----------------------------------------------------------


ops = st.lists(
    st.one_of(
        st.tuples(st.just("offer"), messages),
        st.tuples(st.just("pop"), st.none()),
        st.tuples(st.just("advance"), st.sampled_from([0.5, 1.0, 3.0])),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(policy=policies, operations=ops)
def test_order_bounds_and_accounting_without_a_model(
    policy: QueuePolicy, operations: list[tuple[str, object]]
) -> None:
    """FIFO hands out increasing seqs, LIFO the newest live one; drops are never stale reports."""
    clock = FakeClock()
    dropped: dict[int, DropReason] = {}
    deadlines: dict[int, float | None] = {}

    def on_drop(report: DroppedMessage, item: QueuedMessage) -> None:
        assert item.seq not in dropped
        dropped[item.seq] = report.reason
        if report.reason is DropReason.EXPIRED:
            deadline = deadlines[item.seq]
            assert deadline is not None
            assert clock.now >= deadline

    queue = OfflineQueue(policy, clock=clock, on_drop=on_drop)
    queued: set[int] = set()
    handed: list[int] = []
    seq = 0
    for op, arg in operations:
        if op == "offer":
            assert isinstance(arg, Message)
            seq += 1
            interval = arg.properties.message_expiry_interval
            deadlines[seq] = None if interval is None else clock.now + interval
            item = queue.offer(arg)
            if item is not None:
                assert item.seq == seq
                queued.add(seq)
            else:
                assert seq in dropped
        elif op == "pop":
            item = queue.pop()
            queued -= set(dropped)
            if item is None:
                assert not queued
                continue
            deadline = deadlines[item.seq]
            assert deadline is None or deadline > clock.now
            if policy.drain is Drain.FIFO:
                assert not handed or item.seq > handed[-1]
                assert item.seq == min(queued)
            else:
                assert item.seq == max(queued)
            queued.discard(item.seq)
            handed.append(item.seq)
        else:
            assert isinstance(arg, float)
            clock.now += arg
        queued -= set(dropped)
        if policy.max_messages is not None:
            assert len(queue) <= policy.max_messages
        if policy.max_bytes is not None:
            assert queue.bytes <= policy.max_bytes
        assert len(queue) == len(queued)
    queue.clear(DropReason.CLOSED)
    assert sorted([*handed, *dropped]) == list(range(1, seq + 1))


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(1, 20),
    count=st.integers(0, 100),
    overflow=st.sampled_from(Overflow),
)
def test_overflow_keeps_the_right_messages(capacity: int, count: int, overflow: Overflow) -> None:
    """DROP_OLDEST keeps the last ``capacity``; DROP_NEWEST/REJECT keep the first ``capacity``."""
    reasons: list[tuple[int, DropReason]] = []
    queue = OfflineQueue(
        QueuePolicy(max_messages=capacity, overflow=overflow),
        clock=FakeClock(),
        on_drop=lambda d, item: reasons.append((item.seq, d.reason)),
    )
    for _ in range(count):
        queue.offer(Message("t", b"p", 1))
    kept = [item.seq for item in queue.drain_all()]
    all_seqs = list(range(1, count + 1))
    if overflow is Overflow.DROP_OLDEST:
        assert kept == all_seqs[-capacity:] if count else kept == []
    else:
        assert kept == all_seqs[:capacity]
    expected_reason = DropReason.REJECTED if overflow is Overflow.REJECT else DropReason.OVERFLOW
    assert sorted(seq for seq, _ in reasons) == [s for s in all_seqs if s not in kept]
    assert {reason for _, reason in reasons} <= {expected_reason}
