"""Envoys without a broker: serializers, the de-duplication cache, argument checks, and the
executor/invoker logic on an in-memory fake connection (virtual time where timers matter)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import pytest
import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import Disposable
from reactivex.subject import AsyncSubject
from reactivex.testing import TestScheduler

from rxmqtt import ConnectionSettings, Message, PublishProperties, PublishResult
from rxmqtt.binders import (
    JSON,
    RAW,
    TEXT,
    CommandExecutionError,
    CommandExecutor,
    CommandInvoker,
    CommandTimeoutError,
    DedupCache,
    EnvoyDisposedError,
    JsonSerializer,
    PayloadError,
    SkipReason,
    Status,
    TelemetryReceiver,
    TelemetrySender,
)
from rxmqtt.binders._protocol import expiry_for, parse_timestamp
from rxmqtt.testing.recorder import Recorder
from rxmqtt.topics import matches
from tests._helpers import FakePublisher


class FakeConnection(FakePublisher):
    """An in-memory broker and connection in one: what is published reaches every matching
    ``messages()`` subscriber at once (shared filters included). Records subscriptions."""

    def __init__(self, client_id: str = "fake-1") -> None:
        self.settings = ConnectionSettings(host="127.0.0.1", client_id=client_id)
        self.subscribers: list[tuple[str, abc.ObserverBase[Message]]] = []
        self.published: list[Message] = []

    def messages(self, topic_filter: str, qos: int = 0) -> Observable[Message]:
        def subscribe(
            observer: abc.ObserverBase[Message], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            entry = (topic_filter, observer)
            self.subscribers.append(entry)
            return Disposable(lambda: self.subscribers.remove(entry))

        return reactivex.create(subscribe)

    def filters(self) -> list[str]:
        return [f for f, _ in self.subscribers]

    def _publish(self, message: Message) -> Observable[PublishResult]:
        self.published.append(message)
        self.deliver(message)
        result: AsyncSubject[PublishResult] = AsyncSubject()
        result.on_next(PublishResult(message.topic, message.qos))
        result.on_completed()
        return result

    def deliver(self, message: Message) -> None:
        for topic_filter, observer in list(self.subscribers):
            if matches(topic_filter, message.topic):
                observer.on_next(message)


def cid(text: bytes) -> bytes:
    """A readable 16-byte correlation id (AIO's correlation data is a 16-byte GUID)."""
    return text.ljust(16, b".")


CID = cid(b"c1")


def request(
    topic: str,
    payload: bytes,
    *,
    response_topic: str | None = "r/1",
    correlation: bytes | None = CID,
    expiry: int | None = 10,
) -> Message:
    return Message(
        topic,
        payload,
        1,
        properties=PublishProperties(
            message_expiry_interval=expiry,
            response_topic=response_topic,
            correlation_data=correlation,
        ),
    )


def status_of(message: Message) -> int:
    props = dict(message.properties.user_properties)
    return int(props["__stat"])


@dataclass(frozen=True)
class Reading:
    seq: int
    celsius: float


READING = JsonSerializer(to_json=dataclasses.asdict, from_json=lambda d: Reading(**d))


# ---------------------------------------------------------------- serializers and protocol


def test_json_serializer_round_trips_typed_values() -> None:
    payload = READING.serialize(Reading(3, 21.5))
    assert json.loads(payload) == {"seq": 3, "celsius": 21.5}
    assert READING.deserialize(payload) == Reading(3, 21.5)
    assert JSON.deserialize(JSON.serialize({"ü": [1, None]})) == {"ü": [1, None]}
    assert JSON.content_type == "application/json"
    assert JSON.payload_format_indicator == 1
    with pytest.raises(ValueError, match="Out of range float"):
        JSON.serialize(float("nan"))


def test_raw_and_text_serializers() -> None:
    assert RAW.serialize(bytearray(b"\x00\x01")) == b"\x00\x01"
    assert RAW.deserialize(b"\xff") == b"\xff"
    with pytest.raises(TypeError, match="expected bytes"):
        RAW.serialize("text")  # type: ignore[arg-type]
    assert TEXT.deserialize(TEXT.serialize("héllo")) == "héllo"
    with pytest.raises(TypeError, match="expected str"):
        TEXT.serialize(b"x")  # type: ignore[arg-type]


def test_timestamps_and_expiry_helpers() -> None:
    from datetime import UTC, datetime

    moment = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    text = f"{int(moment.timestamp() * 1000):015d}:00003:node-1"
    assert parse_timestamp(text) == moment
    assert parse_timestamp("2024-05-01T12:00:00.123Z") is None
    assert parse_timestamp("not a time") is None
    assert parse_timestamp(None) is None
    assert [expiry_for(s) for s in (0.01, 1.0, 1.2, 7)] == [1, 1, 2, 7]


# ---------------------------------------------------------------- de-duplication cache


def test_dedup_cache_bounds_entries_and_expires_them() -> None:
    now = [0.0]
    cache: DedupCache[str, int] = DedupCache(3, ttl=10.0, clock=lambda: now[0])
    for i, key in enumerate("abcd"):
        cache.put(key, i)
    assert len(cache) == 3
    assert cache.get("a") is None, "the oldest was evicted"
    assert cache.get("d") == 3
    assert cache.update("d", 30)
    assert cache.get("d") == 30
    cache.put("long", 9, ttl=100.0)
    now[0] = 10.0
    assert cache.get("d") is None, "expired at its ttl"
    assert not cache.update("d", 1)
    assert cache.get("long") == 9
    cache.discard("long")
    assert cache.get("long") is None
    with pytest.raises(ValueError, match="max_entries"):
        DedupCache(0, 1.0, lambda: 0.0)
    with pytest.raises(ValueError, match="ttl"):
        DedupCache(1, 0, lambda: 0.0)


# ---------------------------------------------------------------- argument checks


def test_bad_arguments_raise_at_the_call_site_naming_them() -> None:
    conn = FakeConnection()
    with pytest.raises(TypeError, match="conn: must be an rxmqtt Connection"):
        TelemetrySender(object(), "t")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="topic: has an invalid level '\\+'"):
        TelemetrySender(conn, "a/+")
    with pytest.raises(ValueError, match="qos: must be 0, 1 or 2"):
        TelemetrySender(conn, "a", qos=3)
    with pytest.raises(TypeError, match="serializer: must be a Serializer"):
        TelemetrySender(conn, "a", serializer=json)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="message_expiry_interval"):
        TelemetrySender(conn, "a", message_expiry_interval=0)
    with pytest.raises(ValueError, match="topic_filter: '#' must be the last level"):
        TelemetryReceiver(conn, "a/#/b")
    with pytest.raises(ValueError, match="request_topic: has an invalid level '#'"):
        CommandInvoker(conn, "cmd/#")
    with pytest.raises(ValueError, match="timeout: must be a positive"):
        CommandInvoker(conn, "cmd", timeout=0)
    with pytest.raises(ValueError, match="response_topic: has an invalid level '\\+'"):
        CommandInvoker(conn, "cmd", response_topic="r/+")
    with pytest.raises(TypeError, match="handler: must be callable"):
        CommandExecutor(conn, "cmd", 42)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="shared_group: must be non-empty"):
        CommandExecutor(conn, "cmd", str, shared_group="a/b")
    with pytest.raises(ValueError, match="request_topic: give the plain filter"):
        CommandExecutor(conn, "$share/g/cmd", str)
    with pytest.raises(ValueError, match="max_concurrency"):
        CommandExecutor(conn, "cmd", str, max_concurrency=0)
    with pytest.raises(ValueError, match="dedup_ttl"):
        CommandExecutor(conn, "cmd", str, dedup_ttl=-1)
    with pytest.raises(ValueError, match="status: must be a non-2xx"):
        CommandExecutionError(200, "fine")
    assert conn.subscribers == [], "a refused executor subscribed nothing"


async def test_unserializable_values_raise_payload_error_naming_the_argument() -> None:
    conn = FakeConnection()
    sender = TelemetrySender(conn, "t", READING)
    with pytest.raises(PayloadError, match="value: JsonSerializer cannot serialize"):
        sender.send(object())  # type: ignore[arg-type]
    invoker = CommandInvoker(conn, "cmd")
    with pytest.raises(PayloadError, match="request: JsonSerializer cannot serialize"):
        invoker.invoke({1, 2})
    with pytest.raises(ValueError, match="timeout: must be a positive"):
        invoker.invoke({}, timeout=-1)
    assert invoker.pending == 0
    assert conn.published == []


def test_invoke_outside_a_loop_without_scheduler_says_how_to_fix_it() -> None:
    invoker = CommandInvoker(FakeConnection(), "cmd")
    with pytest.raises(RuntimeError, match="invoke: call it on the connection's asyncio loop"):
        invoker.invoke({})


# ---------------------------------------------------------------- telemetry on a fake


async def test_receiver_decodes_tokens_source_and_reports_undecodable_payloads() -> None:
    conn = FakeConnection("dev-9")
    receiver = TelemetryReceiver(conn, "$share/g/sensors/+/x/+", READING)
    items = Recorder(receiver.telemetry)
    errors = Recorder(receiver.decode_errors)
    sender = TelemetrySender(conn, "sensors/a/x/b", READING)
    sender.send(Reading(1, 2.0))
    conn.deliver(Message("sensors/a/x/c", b"{not json"))
    assert len(items.items) == 1
    item = items.items[0]
    assert item.value == Reading(1, 2.0)
    assert item.topic_tokens == ("a", "b")
    assert item.source_id == "dev-9"
    assert item.timestamp is not None
    assert item.message.properties.content_type == "application/json"
    assert len(errors.items) == 1
    assert errors.items[0].topic == "sensors/a/x/c"
    receiver.dispose()
    assert items.completed
    assert errors.completed
    assert conn.subscribers == []


async def test_sink_pipes_a_stream_and_dispose_stops_it() -> None:
    conn = FakeConnection()
    sender = TelemetrySender(conn, "t", TEXT)
    results = Recorder(reactivex.of("a", "b", "c").pipe(sender.sink()))
    assert [r.topic for r in results.items] == ["t", "t", "t"]
    assert [m.payload for m in conn.published] == [b"a", b"b", b"c"]
    assert results.completed
    sender.dispose()
    after = Recorder(reactivex.of("d").pipe(sender.sink()))
    assert after.completed
    assert after.items == []
    with pytest.raises(RuntimeError, match="send: this TelemetrySender was disposed"):
        sender.send("e")


# ---------------------------------------------------------------- executor logic on a fake


@pytest.fixture
def fake() -> FakeConnection:
    return FakeConnection()


async def test_executor_handler_kinds_sync_async_observable(fake: FakeConnection) -> None:
    async def slow_double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    responses = Recorder(fake.messages("r/#"))
    CommandExecutor(fake, "sync", lambda x: x + 1)
    CommandExecutor(fake, "async", slow_double)
    CommandExecutor(fake, "obs", lambda x: reactivex.of(x, x * 10))
    fake.deliver(request("sync", b"1", response_topic="r/s"))
    fake.deliver(request("async", b"2", response_topic="r/a"))
    fake.deliver(request("obs", b"3", response_topic="r/o"))
    await responses.wait_for_count(3, 2)
    by_topic = {m.topic: m for m in responses.items}
    assert by_topic["r/s"].payload == b"2"
    assert by_topic["r/a"].payload == b"4"
    assert by_topic["r/o"].payload == b"30"
    assert all(status_of(m) == 200 for m in responses.items)
    assert all(m.properties.correlation_data == CID for m in responses.items)
    assert all(m.properties.message_expiry_interval == 10 for m in responses.items)


async def test_executor_status_codes_and_rejections(fake: FakeConnection) -> None:
    def handler(name: str) -> str:
        if name == "missing":
            raise CommandExecutionError(404, "no such valve")
        if name == "boom":
            raise RuntimeError("boom")
        return name

    responses = Recorder(fake.messages("r/#"))
    executor = CommandExecutor(fake, "valves/+", handler)
    skipped = Recorder(executor.skipped)
    fake.deliver(request("valves/1", b'"missing"', correlation=cid(b"1")))
    fake.deliver(request("valves/1", b'"boom"', correlation=cid(b"2")))
    fake.deliver(request("valves/1", b"{bad json", correlation=cid(b"3")))
    fake.deliver(request("valves/1", b'"x"', correlation=cid(b"4"), expiry=None))
    fake.deliver(request("valves/1", b'"x"', correlation=cid(b"5"), response_topic=None))
    fake.deliver(request("valves/1", b'"x"', correlation=cid(b"6"), response_topic="r/+"))
    statuses = {m.properties.correlation_data: status_of(m) for m in responses.items}
    assert statuses == {cid(b"1"): 404, cid(b"2"): 500, cid(b"3"): 400, cid(b"4"): 400}
    messages = {
        m.properties.correlation_data: dict(m.properties.user_properties)["__stMsg"]
        for m in responses.items
    }
    assert messages[cid(b"1")] == "no such valve"
    assert messages[cid(b"2")] == "RuntimeError: boom"
    assert "cannot be decoded" in messages[cid(b"3")]
    assert "no message expiry" in messages[cid(b"4")]
    reasons = [s.reason for s in skipped.items]
    assert reasons == [
        SkipReason.BAD_REQUEST,
        SkipReason.NO_EXPIRY,
        SkipReason.NO_RESPONSE_TOPIC,
        SkipReason.NO_RESPONSE_TOPIC,
    ]
    assert executor.executed == 2


async def test_executor_deduplicates_by_correlation_data(fake: FakeConnection) -> None:
    calls: list[int] = []
    release = asyncio.Event()

    async def handler(x: int) -> int:
        calls.append(x)
        await release.wait()
        return x

    responses = Recorder(fake.messages("r/#"))
    executor = CommandExecutor(fake, "cmd", handler)
    skipped = Recorder(executor.skipped)
    fake.deliver(request("cmd", b"7"))
    await asyncio.sleep(0)
    fake.deliver(request("cmd", b"7"))  # re-delivered while running: no second run
    assert [s.detail for s in skipped.items] == ["in progress: one answer follows"]
    release.set()
    await responses.wait_for_count(1, 2)
    fake.deliver(request("cmd", b"7"))  # re-delivered after: answered from the cache
    assert len(responses.items) == 2
    assert responses.items[0].payload == responses.items[1].payload == b"7"
    assert calls == [7]
    fake.deliver(request("cmd", b"7", response_topic="r/other"))  # same bytes, other invoker
    await responses.wait_for_count(3, 2)
    assert calls == [7, 7]


def test_executor_drops_requests_that_expire_while_waiting_virtual_time() -> None:
    fake = FakeConnection()
    scheduler = TestScheduler()
    ran: list[int] = []

    def handler(x: int) -> Observable[int]:
        ran.append(x)
        return reactivex.timer(5.0, scheduler=scheduler).pipe(ops.map(lambda _: x))

    responses = Recorder(fake.messages("r/#"))
    executor = CommandExecutor(fake, "cmd", handler, max_concurrency=1, scheduler=scheduler)
    skipped = Recorder(executor.skipped)
    fake.deliver(request("cmd", b"1", correlation=cid(b"a"), expiry=10))
    fake.deliver(request("cmd", b"2", correlation=cid(b"b"), expiry=3))  # waits; expires at t=3
    fake.deliver(request("cmd", b"3", correlation=cid(b"c"), expiry=20))  # waits; runs at t=5
    assert executor.running == 1
    scheduler.advance_to(3.0)
    assert [(s.reason, s.correlation_data) for s in skipped.items] == [
        (SkipReason.EXPIRED, cid(b"b"))
    ]
    scheduler.advance_to(5.0)
    assert [m.payload for m in responses.items] == [b"1"]
    assert responses.items[0].properties.message_expiry_interval == 5  # what is left of 10
    scheduler.advance_to(10.0)
    assert [m.payload for m in responses.items] == [b"1", b"3"]
    assert ran == [1, 3], "the expired request never ran"


def test_executor_cancels_a_handler_still_running_at_the_deadline() -> None:
    fake = FakeConnection()
    scheduler = TestScheduler()
    subscribed: list[bool] = []

    def handler(x: int) -> Observable[int]:
        return reactivex.never().pipe(
            ops.do_action(on_completed=lambda: None),
            ops.finally_action(lambda: subscribed.append(False)),
        )

    responses = Recorder(fake.messages("r/#"))
    executor = CommandExecutor(fake, "cmd", handler, scheduler=scheduler)
    fake.deliver(request("cmd", b"1", expiry=2))
    scheduler.advance_to(2.0)
    assert subscribed == [False], "the handler's observable was disposed"
    assert responses.items == [], "nobody waits for an answer any more"
    assert executor.running == 0


async def test_executor_dispose_unsubscribes_cancels_and_leaves_others(
    fake: FakeConnection,
) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever(_: Any) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    other = CommandExecutor(fake, "cmd", lambda x: x)
    with CommandExecutor(fake, "cmd", forever, shared_group="g") as executor:
        assert sorted(fake.filters()) == ["$share/g/cmd", "cmd"]
        fake.deliver(request("cmd", b"1"))
        await asyncio.wait_for(started.wait(), 2)
    await asyncio.wait_for(cancelled.wait(), 2)
    assert executor.disposed
    assert fake.filters() == ["cmd"], "only its own subscription went"
    assert not other.disposed


# ---------------------------------------------------------------- invoker logic on a fake


async def test_invoker_matches_responses_and_ignores_duplicates(fake: FakeConnection) -> None:
    invoker = CommandInvoker(fake, "cmd", timeout=5)
    assert invoker.response_topic == "clients/fake-1/cmd"
    ignored = Recorder(invoker.ignored)
    first = Recorder(invoker.invoke({"n": 1}))
    req = fake.published[-1]
    props = req.properties
    assert props.response_topic == invoker.response_topic
    assert props.correlation_data is not None
    assert len(props.correlation_data) == 16
    assert props.message_expiry_interval == 5
    assert dict(props.user_properties)["__srcId"] == "fake-1"
    answer = Message(
        invoker.response_topic,
        b'{"ok":true}',
        properties=PublishProperties(
            correlation_data=props.correlation_data, user_properties=(("__stat", "200"),)
        ),
    )
    fake.deliver(answer)
    fake.deliver(answer)  # a duplicate
    assert first.items == [{"ok": True}]
    assert first.completed
    assert len(ignored.items) == 1
    second = Recorder(invoker.invoke({"n": 2}))
    fake.deliver(
        dataclasses.replace(
            answer,
            payload=b"",
            properties=PublishProperties(
                correlation_data=fake.published[-1].properties.correlation_data,
                user_properties=(("__stat", "503"), ("__stMsg", "busy")),
            ),
        )
    )
    assert isinstance(second.error, CommandExecutionError)
    assert (second.error.status, second.error.status_message) == (503, "busy")
    assert fake.filters() == [invoker.response_topic], "one shared response subscription"
    third = Recorder(invoker.invoke({"n": 3}))
    invoker.dispose()
    assert isinstance(third.error, EnvoyDisposedError)
    assert fake.subscribers == []


async def test_a_raising_result_subscriber_cannot_break_the_invoker(
    fake: FakeConnection, caplog: pytest.LogCaptureFixture
) -> None:
    """The response handler settles the result; a subscriber that raises is logged, and the
    invoker goes on matching responses for the next invocations."""
    invoker = CommandInvoker(fake, "cmd", timeout=5)

    def explode(_value: object) -> None:
        raise ValueError("subscriber bug")

    invoker.invoke({"n": 1}).subscribe(explode)

    def answer(body: bytes) -> Message:
        return Message(
            invoker.response_topic,
            body,
            properties=PublishProperties(
                correlation_data=fake.published[-1].properties.correlation_data,
                user_properties=(("__stat", "200"),),
            ),
        )

    fake.deliver(answer(b"1"))
    assert "raised in on_next; ignored" in caplog.text
    second = Recorder(invoker.invoke({"n": 2}))
    fake.deliver(answer(b"2"))
    assert second.items == [2]
    assert second.completed


def test_invoker_times_out_on_the_injected_scheduler() -> None:
    fake = FakeConnection()
    scheduler = TestScheduler()
    invoker = CommandInvoker(fake, "cmd", scheduler=scheduler)
    result = Recorder(invoker.invoke("x", timeout=2.5))
    assert fake.published[-1].properties.message_expiry_interval == 3
    scheduler.advance_to(2.4)
    assert result.error is None
    scheduler.advance_to(2.5)
    assert isinstance(result.error, CommandTimeoutError)
    assert isinstance(result.error, TimeoutError)
    assert result.error.timeout == 2.5
    assert invoker.pending == 0


async def test_invoker_round_trip_through_executor_on_fake(fake: FakeConnection) -> None:
    CommandExecutor(fake, "add", lambda xs: sum(xs))
    invoker = CommandInvoker(fake, "add")
    assert await invoker.invoke([1, 2, 3]) == 6
    assert status_of(fake.published[-1]) == Status.OK


def test_the_binder_layer_never_imports_paho_or_qt() -> None:
    import subprocess
    import sys

    code = (
        "import sys, rxmqtt.binders\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('paho', 'PySide6', 'qasync')"
        " or m in ('rxmqtt.engine', 'rxmqtt.connection')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def test_async_handler_without_a_running_loop_answers_500() -> None:
    fake = FakeConnection()
    scheduler = TestScheduler()

    async def handler(x: int) -> int:
        return x

    responses = Recorder(fake.messages("r/#"))
    executor = CommandExecutor(fake, "cmd", handler, scheduler=scheduler)
    fake.deliver(request("cmd", b"1"))
    assert [status_of(m) for m in responses.items] == [500]
    assert executor.running == 0
