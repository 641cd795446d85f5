"""The pure parts of the AIO protocol: the hybrid logical clock, ISO 8601 durations, topic
patterns, and the invoker's ``$partition`` (the METL suite in tests/metl covers the rest)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxmqtt.binders import (
    RAW,
    AioError,
    CommandInvoker,
    ErrorKind,
    HybridLogicalClock,
    TelemetryReceiver,
    TelemetrySender,
    Timestamp,
)
from rxmqtt.binders._protocol import iso_duration
from rxmqtt.binders._topic_pattern import TopicPattern
from rxmqtt.message import Message, PublishProperties
from rxmqtt.testing.recorder import Recorder
from tests.binders.test_envoy_units import FakeConnection


def test_clock_moves_forward_when_the_wall_clock_stands_still() -> None:
    clock = HybridLogicalClock("node-a", wall_ms=lambda: 1_000)
    first, second = clock.now(), clock.now()
    assert (first.millis, first.counter) == (1_000, 0)
    assert (second.millis, second.counter) == (1_000, 1)
    assert first.encode() == "000000000001000:00000:node-a"
    assert Timestamp.decode(first.encode()) == first


def test_clock_merges_a_later_peer_and_refuses_one_too_far_ahead() -> None:
    wall = [1_000]
    clock = HybridLogicalClock("a", max_drift=60, wall_ms=lambda: wall[0])
    clock.update(Timestamp(5_000, 7, "b"))
    assert clock.now() == Timestamp(5_000, 9, "a")  # after the peer's 5000:7 (merge bumps)
    with pytest.raises(AioError) as refused:
        clock.update(Timestamp(1_000 + 60_001, 0, "c"))
    assert refused.value.kind is ErrorKind.INVALID_STATE
    wall[0] = 10_000
    assert clock.now() == Timestamp(10_000, 0, "a")


@given(st.lists(st.tuples(st.integers(0, 2_000), st.integers(0, 50)), max_size=30))
def test_clock_readings_strictly_increase_whatever_peers_send(
    events: list[tuple[int, int]],
) -> None:
    clock = HybridLogicalClock("a", max_drift=10, wall_ms=lambda: 1_000)
    last = clock.now()
    for millis, counter in events:
        with contextlib.suppress(AioError):  # too far ahead: refused, clock unchanged
            clock.update(Timestamp(millis, counter, "peer"))
        reading = clock.now()
        assert (reading.millis, reading.counter) > (last.millis, last.counter)
        last = reading


def test_malformed_timestamps_are_an_invalid_header() -> None:
    with pytest.raises(AioError) as bad:
        Timestamp.decode("NotValid")
    assert (bad.value.kind, bad.value.header_name) == (ErrorKind.INVALID_HEADER, "__ts")


def test_iso_durations_as_aio_reports_timeouts() -> None:
    assert [iso_duration(s) for s in (1, 0.5, 90, 3600, 0)] == [
        "PT1S",
        "PT0.5S",
        "PT1M30S",
        "PT1H",
        "PT0S",
    ]


def test_topic_patterns_resolve_filter_and_read_tokens() -> None:
    pattern = TopicPattern.parse(
        "{modelId}/{executorId}/{ex:room}",
        namespace="ns",
        argument="topic",
        tokens={"modelId": "m1"},
    )
    assert pattern.filter() == "ns/m1/+/+"
    assert pattern.topic({"executorId": "e", "ex:room": "r"}, argument="topic") == "ns/m1/e/r"
    assert pattern.tokens_of("ns/m1/e/r", {"modelId": "m1"}) == {
        "modelId": "m1",
        "executorId": "e",
        "ex:room": "r",
    }
    assert pattern.tokens_of("ns/m2/e/r", {}) is None
    with pytest.raises(AioError) as missing:
        pattern.topic({"executorId": "e"}, argument="topic")
    assert missing.value.property_name == "ex:room"
    with pytest.raises(ValueError, match="must be a single valid topic level"):
        TopicPattern.parse("a/{x}", argument="topic", tokens={"x": "b/c"})


async def test_requests_carry_the_invokers_partition_unless_metadata_sets_it() -> None:
    fake = FakeConnection()
    invoker = CommandInvoker(fake, "cmd", timeout=5)
    invoker.invoke({"n": 1})
    assert dict(fake.published[-1].properties.user_properties)["$partition"] == "fake-1"
    invoker.invoke({"n": 2}, metadata={"$partition": "tenant-9"})
    pairs = fake.published[-1].properties.user_properties
    assert [v for k, v in pairs if k == "$partition"] == ["tenant-9"]
    invoker.dispose()


def test_a_receiver_merges_the_senders_clock_and_senders_fill_sender_id() -> None:
    fake = FakeConnection("reader")
    receiver = TelemetryReceiver(fake, "t/{senderId}", RAW)
    got = Recorder(receiver.telemetry)
    ahead = Timestamp(HybridLogicalClock("x").now().millis + 30_000, 3, "device")
    fake.deliver(
        Message(
            "t/device",
            b"1",
            1,
            properties=PublishProperties(user_properties=(("__ts", ahead.encode()),)),
        )
    )
    assert [(t.tokens["senderId"], t.value) for t in got.items] == [("device", b"1")]
    mine = receiver.clock.now()
    assert (mine.millis, mine.counter) > (ahead.millis, ahead.counter), "merged: causally later"
    sender = TelemetrySender(fake, "t/{senderId}", RAW)
    sender.send(b"2")
    assert fake.published[-1].topic == "t/reader"
