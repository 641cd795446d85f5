"""The in-order acknowledgement ledger (``rxmqtt._ack_ledger``), pure: no broker, no clock.

Hypothesis plays random arrivals, extra holds, releases (repeated ones too) and lost links
against a model of MQTT 5's rule: an acknowledgement goes out once its message and every
earlier one on the same link are released, each exactly once, in arrival order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rxmqtt._ack_ledger import Ack, AckLedger, Hold


def test_an_ack_waits_for_every_earlier_message() -> None:
    ledger = AckLedger()
    first = ledger.receive(1, 1)
    second = ledger.receive(2, 2)
    third = ledger.receive(3, 1)
    assert ledger.release(third) == []
    assert ledger.release(second) == []
    assert ledger.pending == 3
    assert ledger.release(first) == [Ack(1, 1), Ack(2, 2), Ack(3, 1)]
    assert ledger.pending == 0


def test_an_ack_waits_for_every_hold_and_a_second_release_does_nothing() -> None:
    ledger = AckLedger()
    dispatch = ledger.receive(7, 1)
    reader_a = ledger.hold(dispatch.ticket)
    reader_b = ledger.hold(dispatch.ticket)
    assert ledger.release(dispatch) == []
    assert ledger.release(reader_a) == []
    assert ledger.release(reader_a) == []  # idempotent: it must not stand in for reader_b
    assert ledger.release(reader_b) == [Ack(7, 1)]
    assert ledger.release(reader_b) == []


def test_after_a_lost_link_old_releases_send_nothing_and_new_messages_flow() -> None:
    ledger = AckLedger()
    old = ledger.receive(1, 1)
    held = ledger.receive(2, 1)
    assert ledger.release(held) == []
    assert ledger.link_lost() == 2
    assert ledger.pending == 0
    # The broker re-sends packet 1 on the next link, with the same packet id.
    again = ledger.receive(1, 1)
    assert ledger.release(old) == []  # the old link's hold: no PUBACK for the new delivery
    assert ledger.pending == 1
    assert ledger.release(again) == [Ack(1, 1)]


def test_only_qos_1_and_2_are_acknowledged() -> None:
    with pytest.raises(ValueError, match="qos"):
        AckLedger().receive(1, 0)


@dataclass
class _Model:
    """What MQTT 5 allows: per link, the arrival order and who still holds each message."""

    arrivals: list[tuple[int, int]] = field(default_factory=list)
    holders: list[int] = field(default_factory=list)
    sent: int = 0
    """How many of this link's arrivals were acknowledged (a prefix)."""

    def due(self) -> list[Ack]:
        out = []
        while self.sent < len(self.arrivals) and self.holders[self.sent] == 0:
            out.append(Ack(*self.arrivals[self.sent]))
            self.sent += 1
        return out


_steps = st.lists(
    st.one_of(
        st.tuples(st.just("receive"), st.integers(1, 65535), st.sampled_from([1, 2])),
        st.tuples(st.just("hold"), st.integers(0, 50), st.just(0)),
        st.tuples(st.just("release"), st.integers(0, 200), st.just(0)),
        st.tuples(st.just("lost"), st.just(0), st.just(0)),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(_steps)
def test_acks_follow_arrival_order_and_every_hold(steps: list[tuple[str, int, int]]) -> None:
    ledger = AckLedger()
    model = _Model()
    link = 0
    holds: list[tuple[Hold, int, int]] = []  # (hold, link, arrival index)
    for kind, number, qos in steps:
        if kind == "receive":
            hold = ledger.receive(number, qos)
            model.arrivals.append((number, qos))
            model.holders.append(1)
            holds.append((hold, link, len(model.arrivals) - 1))
        elif kind == "hold" and holds:
            base, base_link, index = holds[number % len(holds)]
            if base_link == link and model.holders[index] > 0:  # still waiting: may be held
                holds.append((ledger.hold(base.ticket), link, index))
                model.holders[index] += 1
        elif kind == "release" and holds:
            hold, hold_link, index = holds[number % len(holds)]
            first_release = not hold.released
            due = ledger.release(hold)
            if hold_link == link and first_release:
                model.holders[index] -= 1
                expected = model.due()
            else:
                expected = []  # repeated, or from a lost link: nothing
            assert due == expected
        elif kind == "lost":
            assert ledger.link_lost() == len(model.arrivals) - model.sent
            model = _Model()
            link += 1
        assert ledger.pending == len(model.arrivals) - model.sent
