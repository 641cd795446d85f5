"""The grace buffer in virtual time: an injected clock, no sleeps.

Unmatched messages are kept only inside the grace period after a CONNACK, within the count and
byte bounds; a claim hands out the matching ones in arrival order; everything else leaves
(returned to the caller for ``unmatched_messages``/``dropped``) exactly once.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rxmqtt import GracePeriod
from rxmqtt._grace_buffer import Claimed, GraceBuffer
from rxmqtt.message import Message, PublishProperties


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def msg(topic: str, n: int = 0, size: int = 1) -> Message:
    return Message(topic, bytes([n % 256]) * size)


def buffer(**policy: float) -> tuple[GraceBuffer, Clock]:
    clock = Clock()
    return GraceBuffer(GracePeriod(**policy), clock), clock  # type: ignore[arg-type]


def test_defaults_are_documented_values() -> None:
    assert GracePeriod() == GracePeriod(seconds=10.0, max_messages=10_000, max_bytes=16_000_000)


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"seconds": -1}, ValueError, "seconds: must be >= 0"),
        ({"seconds": math.inf}, ValueError, "seconds: must be a finite"),
        ({"seconds": "5"}, TypeError, "seconds: must be a number"),
        ({"max_messages": -1}, ValueError, "max_messages: must be >= 0"),
        ({"max_messages": 1.5}, TypeError, "max_messages: must be an int"),
        ({"max_bytes": True}, TypeError, "max_bytes: must be an int"),
    ],
)
def test_bad_policy_values_name_the_argument(
    kwargs: dict[str, object], error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text):
        GracePeriod(**kwargs)  # type: ignore[arg-type]


def test_before_any_connack_nothing_is_kept() -> None:
    grace, _ = buffer()
    assert grace.offer(msg("a")) == [msg("a")]
    assert len(grace) == 0


def test_kept_within_the_window_and_claimed_in_arrival_order() -> None:
    grace, clock = buffer(seconds=5)
    grace.open_window()
    sent = [msg("s/1/t", 1), msg("other", 2), msg("s/2/t", 3)]
    for m in sent:
        clock.now += 1
        assert grace.offer(m) == []
    assert grace.claim("s/+/t").messages == [sent[0], sent[2]]
    assert grace.claim("s/+/t").messages == [], "a claimed message is handed out once"
    assert len(grace) == 1
    assert grace.bytes == sent[1].size


def test_unclaimed_messages_expire_when_their_window_ends() -> None:
    grace, clock = buffer(seconds=5)
    grace.open_window()  # at 1000: the window ends at 1005
    grace.offer(msg("a"))
    assert grace.next_expiry == 1005.0
    clock.now = 1004.999
    assert grace.expire() == []
    clock.now = 1005.0
    assert grace.expire() == [msg("a")]
    assert grace.next_expiry is None
    assert grace.offer(msg("late")) == [msg("late")], "after the window, nothing is kept"


def test_a_later_connack_does_not_extend_what_the_earlier_window_kept() -> None:
    grace, clock = buffer(seconds=5)
    grace.open_window()
    grace.offer(msg("first"))
    clock.now = 1003.0
    grace.open_window()  # a reconnect: window until 1008
    grace.offer(msg("second"))
    clock.now = 1005.0
    assert grace.expire() == [msg("first")]
    clock.now = 1008.0
    assert grace.expire() == [msg("second")]


def test_offer_releases_the_expired_first_then_keeps_the_new_one() -> None:
    grace, clock = buffer(seconds=5)
    grace.open_window()
    grace.offer(msg("old"))
    clock.now = 1006.0
    grace.open_window()
    assert grace.offer(msg("new")) == [msg("old")]
    assert grace.claim("new").messages == [msg("new")]


def test_count_bound_pushes_out_the_oldest() -> None:
    grace, _ = buffer(max_messages=2)
    grace.open_window()
    assert grace.offer(msg("a")) == []
    assert grace.offer(msg("b")) == []
    assert grace.offer(msg("c")) == [msg("a")]
    assert grace.claim("#").messages == [msg("b"), msg("c")]


def test_byte_bound_pushes_out_the_oldest_and_a_too_big_message_is_not_kept() -> None:
    grace, _ = buffer(max_bytes=10)
    grace.open_window()
    small = msg("a", size=4)  # 1 + 4 bytes
    assert grace.offer(small) == []
    assert grace.offer(msg("b", size=4)) == []
    assert grace.offer(msg("c", size=4)) == [small]
    assert grace.bytes == 10
    huge = msg("h", size=10)  # 11 bytes: over max_bytes on its own
    assert grace.offer(huge) == [huge]
    assert grace.bytes == 10


@pytest.mark.parametrize("zero", [{"seconds": 0}, {"max_messages": 0}, {"max_bytes": 0}])
def test_a_zero_bound_keeps_nothing(zero: dict[str, int]) -> None:
    grace, _ = buffer(**zero)
    grace.open_window()
    assert grace.offer(msg("a")) == [msg("a")]
    assert len(grace) == 0


def test_shared_subscription_filters_claim_by_their_filter_part() -> None:
    grace, _ = buffer()
    grace.open_window()
    grace.offer(msg("jobs/1"))
    assert grace.claim("$share/workers/jobs/#").messages == [msg("jobs/1")]


def test_message_expiry_counts_down_while_kept_and_an_expired_one_is_not_handed_out() -> None:
    grace, clock = buffer(seconds=10)
    grace.open_window()

    def expiring(topic: str, seconds: int) -> Message:
        return Message(topic, b"", 1, properties=PublishProperties(message_expiry_interval=seconds))

    forever, short, long = msg("t/forever"), expiring("t/short", 2), expiring("t/long", 5)
    for m in (forever, short, long):
        grace.offer(m)
    clock.now += 2.5
    claimed = grace.claim("t/#")
    assert claimed.expired == [short]
    assert claimed.messages == [forever, expiring("t/long", 3)], "5 s less the 2.5 s kept, up"
    assert len(grace) == 0


def test_a_message_claimed_at_once_is_handed_out_as_received() -> None:
    grace, _ = buffer()
    grace.open_window()
    m = Message("t", b"", 1, properties=PublishProperties(message_expiry_interval=1))
    grace.offer(m)
    assert grace.claim("t") == Claimed([m], [])


def test_clear_hands_back_everything_in_order() -> None:
    grace, _ = buffer()
    grace.open_window()
    for topic in "abc":
        grace.offer(msg(topic))
    assert grace.clear() == [msg("a"), msg("b"), msg("c")]
    assert (len(grace), grace.bytes) == (0, 0)


# ---------------------------------------------------------------- property

TOPICS = ("a", "b", "a/x", "b/x")
FILTERS = ("a", "a/#", "+/x", "#")

steps = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), st.floats(0.0, 4.0)),
        st.tuples(st.just("connack"), st.just(0)),
        st.tuples(st.just("offer"), st.sampled_from(TOPICS), st.integers(0, 6)),
        st.tuples(st.just("claim"), st.sampled_from(FILTERS)),
        st.tuples(st.just("expire"), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(
    steps=steps,
    seconds=st.sampled_from([0.0, 1.0, 5.0]),
    max_messages=st.integers(0, 5),
    max_bytes=st.integers(0, 20),
)
def test_every_offered_message_leaves_exactly_once_and_never_early(
    steps: list[tuple[object, ...]], seconds: float, max_messages: int, max_bytes: int
) -> None:
    grace, clock = buffer(seconds=seconds, max_messages=max_messages, max_bytes=max_bytes)
    window_end = -math.inf
    window_of: dict[int, float] = {}  # message number -> end of the window it arrived in
    left: list[int] = []

    def number(m: Message) -> int:
        return int.from_bytes(m.payload[:4], "big")

    def leave(ms: list[Message]) -> list[Message]:
        numbers = [number(m) for m in ms]
        assert numbers == sorted(numbers), "each batch leaves in arrival order"
        left.extend(numbers)
        return [m for m in ms if window_of[number(m)] > clock.now]  # left before its time

    for step in steps:
        kind = step[0]
        if kind == "tick":
            clock.now += float(step[1])  # type: ignore[arg-type]
        elif kind == "connack":
            grace.open_window()
            window_end = clock.now + seconds
        elif kind == "offer":
            topic, extra = str(step[1]), int(step[2])  # type: ignore[call-overload]
            new = len(window_of)
            m = Message(topic, new.to_bytes(4, "big") + b"x" * extra)
            window_of[new] = window_end
            early = leave(grace.offer(m))
            pushed = [e for e in early if number(e) != new]
            if pushed:  # only a bound pushes a kept message out early
                assert len(grace) == max_messages or grace.bytes + sum(e.size for e in pushed) > (
                    max_bytes
                )
            if any(number(e) == new for e in early):  # not kept although in a window
                assert m.size > max_bytes or max_messages == 0 or max_bytes == 0
        elif kind == "claim":
            assert not leave(grace.expire())
            got, expired = grace.claim(str(step[1]))
            assert all(window_of[number(m)] > clock.now for m in got), "claimed in time"
            left.extend(number(m) for m in got + expired)
        else:
            assert not leave(grace.expire())
        assert len(grace) <= max_messages
        assert grace.bytes <= max_bytes
        if kind not in ("tick", "connack"):
            assert all(window_of[number(m)] > clock.now for m in _kept(grace)), "none overstays"
    leave(grace.clear())
    assert sorted(left) == list(range(len(window_of))), "each message leaves exactly once"


def _kept(grace: GraceBuffer) -> list[Message]:
    return [kept.message for kept in grace._kept]
