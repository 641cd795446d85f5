"""Telemetry envoys against a real Mosquitto, sender and receiver on separate connections."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import reactivex
from reactivex import operators as ops

from rxmqtt import Connection, ConnectionState
from rxmqtt.binders import (
    RAW,
    JsonSerializer,
    Telemetry,
    TelemetryReceiver,
    TelemetrySender,
)
from rxmqtt.testing import MosquittoBroker
from rxmqtt.testing.recorder import Recorder
from tests._helpers import connection

pytestmark = pytest.mark.broker


@dataclass(frozen=True)
class Reading:
    seq: int
    celsius: float


READING = JsonSerializer(to_json=dataclasses.asdict, from_json=lambda d: Reading(**d))
PROBE = -1


async def until_live(sender: TelemetrySender[Reading], got: Recorder[Telemetry[Reading]]) -> None:
    """Send probes until the receiver's subscription demonstrably delivers."""
    for _ in range(50):
        await sender.send(Reading(PROBE, 0.0))
        try:
            await got.wait_for_item(lambda t: t.value.seq == PROBE, 0.2, "a probe")
            return
        except TimeoutError:
            continue
    raise TimeoutError("the receiver never became live")


async def live(
    pair: tuple[Connection, Connection], topic_filter: str, topic: str
) -> tuple[TelemetryReceiver[Reading], Recorder[Telemetry[Reading]], TelemetrySender[Reading]]:
    """A receiver of ``topic_filter`` on the pair's second connection, what it receives, and a
    sender to ``topic`` on the first: once the receiver's subscription delivers."""
    pub, sub = pair
    receiver = TelemetryReceiver(sub, topic_filter, READING)
    got = Recorder(receiver.telemetry)
    sender = TelemetrySender(pub, topic, READING)
    await until_live(sender, got)
    return receiver, got, sender


def data(items: list[Telemetry[Reading]]) -> list[Telemetry[Reading]]:
    return [t for t in items if t.value.seq != PROBE]


async def test_a_thousand_values_arrive_in_order_and_typed(
    pair: tuple[Connection, Connection],
) -> None:
    _receiver, got, sender = await live(pair, "plant/+/temperature", "plant/boiler-2/temperature")
    before = datetime.now(UTC) - timedelta(seconds=1)
    values = reactivex.from_iterable(Reading(i, 20 + i / 100) for i in range(1000))
    results = Recorder(values.pipe(sender.sink()))
    await results.wait_done(20)
    assert results.error is None
    assert len(results.items) == 1000
    await got.wait_until(lambda items: len(data(items)) >= 1000, 20, "1000 samples")
    samples = data(got.items)
    assert [t.value for t in samples] == [Reading(i, 20 + i / 100) for i in range(1000)]
    assert all(isinstance(t.value, Reading) for t in samples)
    first = samples[0]
    assert first.topic == "plant/boiler-2/temperature"
    assert first.topic_tokens == ("boiler-2",)
    assert first.source_id == pair[0].settings.client_id
    assert first.timestamp is not None
    assert before <= first.timestamp <= datetime.now(UTC)
    assert first.message.properties.content_type == "application/json"


@dataclass(frozen=True)
class JsonBytes:
    """Raw bytes sent under the JSON content type (a misbehaving sender)."""

    content_type: str = "application/json"
    payload_format_indicator: int | None = None

    def serialize(self, value: bytes) -> bytes:
        return value

    def deserialize(self, payload: bytes) -> bytes:
        return payload


async def test_undecodable_payloads_are_reported_not_fatal(
    pair: tuple[Connection, Connection],
) -> None:
    pub, _ = pair
    receiver, got, sender = await live(pair, "lab/#", "lab/a")
    errors = Recorder(receiver.decode_errors)
    ignored = Recorder(receiver.ignored)
    raw = TelemetrySender(pub, "lab/raw", RAW)
    # Labelled JSON but not JSON: a decode error. Labelled octet-stream: refused unread
    # (AIO's content-type check), so it never reaches the JSON deserializer.
    mislabelled = TelemetrySender(pub, "lab/bad", JsonBytes())
    await mislabelled.send(b"\xff not json")
    await raw.send(b"\xff not json")
    await sender.send(Reading(1, 1.5))
    await got.wait_for_item(lambda t: t.value.seq == 1, 5)
    assert [e.topic for e in errors.items] == ["lab/bad"]
    assert [m.topic for m in ignored.items] == ["lab/raw"]
    assert got.error is None


async def test_envoys_created_before_start_and_surviving_a_broker_crash(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    """Created on connections not yet started; the broker is killed (session lost: the
    connection re-subscribes) and the same envoys carry on."""
    pub, sub = connection(rxmqtt_mosquitto, "pub"), connection(rxmqtt_mosquitto, "sub")
    receiver = TelemetryReceiver(sub, "site/+/power", READING)
    got = Recorder(receiver.telemetry)
    sender = TelemetrySender(pub, "site/m1/power", READING, message_expiry_interval=30)
    queued = sender.send(Reading(0, 0.0))  # before start: waits in the offline queue
    async with pub, sub:
        await until_live(sender, got)
        assert (await queued).reason_code in (0, 0x10)
        rxmqtt_mosquitto.kill()
        await sub.wait_for(ConnectionState.RECONNECTING, 5)
        rxmqtt_mosquitto.start()
        await sub.wait_for(ConnectionState.CONNECTED, 10)
        await pub.wait_for(ConnectionState.CONNECTED, 10)
        got.items.clear()
        await until_live(sender, got)
        await sender.send(Reading(7, 7.0))
        sample = await got.wait_for_item(lambda t: t.value.seq == 7, 5)
        assert sample.message.properties.message_expiry_interval is not None
        assert got.error is None
        assert not got.completed


async def test_disposing_a_receiver_leaves_the_connection_and_other_envoys(
    pair: tuple[Connection, Connection],
) -> None:
    pub, sub = pair
    _keeper, kept, sender = await live(pair, "farm/+/moisture", "farm/f1/moisture")
    with TelemetryReceiver(sub, "farm/+/moisture", READING) as leaving:
        gone = Recorder(leaving.telemetry)
        values = Recorder(leaving.values)
        await sender.send(Reading(1, 0.1))
        await gone.wait_for_item(lambda t: t.value.seq == 1, 5)
        await values.wait_for_item(lambda v: v.seq == 1, 5)
    assert gone.completed, "dispose completes its observers"
    assert values.completed
    await sender.send(Reading(2, 0.2))
    await kept.wait_for_item(lambda t: t.value.seq == 2, 5)
    assert all(t.value.seq != 2 for t in gone.items)
    assert sub.state is ConnectionState.CONNECTED, "the connection is untouched"
    late = Recorder(leaving.telemetry)
    assert late.completed, "a disposed receiver subscribes nothing"
    sender.dispose()
    with pytest.raises(RuntimeError, match="disposed"):
        sender.send(Reading(3, 0.3))
    other = TelemetrySender(pub, "farm/f2/moisture", READING)
    await other.send(Reading(4, 0.4))
    sample = await kept.wait_for_item(lambda t: t.value.seq == 4, 5)
    assert sample.topic_tokens == ("f2",)
    assert pub.state is ConnectionState.CONNECTED


async def test_sink_skip_failed_keeps_a_pipeline_alive(rxmqtt_mosquitto: MosquittoBroker) -> None:
    """A publish that fails (here: the connection closes under it) errors the plain sink but
    is skipped by ``skip_failed``."""
    pub = connection(rxmqtt_mosquitto, "pub")
    sender = TelemetrySender(pub, "x/y", READING)
    strict = Recorder(reactivex.of(Reading(1, 1.0)).pipe(sender.sink()))
    lenient = Recorder(
        reactivex.of(Reading(1, 1.0), Reading(2, 2.0)).pipe(
            sender.sink(skip_failed=True), ops.to_list()
        )
    )
    await pub.close()  # never started: the queued publishes end with ConnectionClosedError
    await strict.wait_done(5)
    await lenient.wait_done(5)
    assert strict.error is not None
    assert lenient.error is None
    assert lenient.items == [[]]
