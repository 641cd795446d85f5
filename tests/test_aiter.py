"""The async bridge (``rxmqtt.aiter``, ``Stream``): pure, no broker, no sleeps.

Sources are Subjects and TestScheduler observables driven by hand, so every interleaving of
pushes and pulls is exact; hypothesis checks the slow-reader policy against a model."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
from collections import deque

import pytest
import reactivex
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex import Observable
from reactivex import operators as ops
from reactivex.subject import Subject
from reactivex.testing import ReactiveTest, TestScheduler

import rxmqtt
from rxmqtt import Stream, StreamIterator


def _stream(subject: Subject[int], dropped: list[int] | None = None) -> Stream[int]:
    def subscribe(observer: object, scheduler: object = None) -> reactivex.abc.DisposableBase:
        return subject.subscribe(observer)  # type: ignore[arg-type]

    return Stream(subscribe, on_drop=None if dropped is None else dropped.append)


async def test_reads_in_order_then_ends_when_the_source_completes() -> None:
    subject: Subject[int] = Subject()
    it = rxmqtt.aiter(subject)
    assert subject.observers, "subscribed at once, before the first read"
    for value in (1, 2, 3):
        subject.on_next(value)
    subject.on_completed()
    assert [value async for value in it] == [1, 2, 3]
    assert not subject.observers


async def test_a_slow_reader_loses_the_oldest_counted_and_reported() -> None:
    subject: Subject[int] = Subject()
    lost: list[int] = []
    it = rxmqtt.aiter(subject, buffer=3, on_drop=lost.append)
    for value in range(10):
        subject.on_next(value)
    assert it.buffered == 3, "memory never holds more than the buffer"
    assert (it.dropped, lost) == (7, [0, 1, 2, 3, 4, 5, 6])
    assert [await anext(it) for _ in range(3)] == [7, 8, 9]
    subject.on_next(10)
    assert await anext(it) == 10
    assert it.dropped == 7


async def test_a_stream_reports_its_drops_and_a_user_callback_gets_them_too() -> None:
    subject: Subject[int] = Subject()
    reported: list[int] = []
    mine: list[int] = []
    stream = _stream(subject, reported)
    it = rxmqtt.aiter(stream, buffer=1, on_drop=mine.append)
    subject.on_next(1)
    subject.on_next(2)
    assert reported == mine == [1]
    assert await anext(it) == 2
    await it.aclose()
    default = stream.__aiter__()
    assert isinstance(default, StreamIterator)
    for value in range(rxmqtt._aiter.DEFAULT_BUFFER + 5):
        subject.on_next(value)
    assert default.dropped == 5
    assert reported[1:] == [0, 1, 2, 3, 4]


async def test_an_error_comes_after_the_values_before_it_then_the_iterator_is_done() -> None:
    subject: Subject[int] = Subject()
    it = rxmqtt.aiter(subject)
    subject.on_next(1)
    subject.on_error(ValueError("refused"))
    assert await anext(it) == 1
    with pytest.raises(ValueError, match="refused"):
        await anext(it)
    with pytest.raises(StopAsyncIteration):
        await anext(it)


async def test_a_waiting_reader_wakes_on_the_next_value_and_on_completion() -> None:
    subject: Subject[int] = Subject()
    it = rxmqtt.aiter(subject)
    reader = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0)  # the reader is now waiting
    assert not reader.done()
    subject.on_next(5)
    assert await reader == 5
    ender = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0)
    subject.on_completed()
    with pytest.raises(StopAsyncIteration):
        await ender


async def test_break_disposes_the_subscription() -> None:
    subject: Subject[int] = Subject()
    seen: list[int] = []

    async def reader() -> None:
        async for value in _stream(subject):
            seen.append(value)
            if value == 2:
                break
        assert not subject.observers, "leaving the loop unsubscribed at once"

    task = asyncio.ensure_future(reader())
    await asyncio.sleep(0)
    for value in (1, 2, 3):
        subject.on_next(value)
    await task
    assert seen == [1, 2]


async def test_return_from_inside_the_loop_disposes() -> None:
    subject: Subject[int] = Subject()

    async def first() -> int:
        async for value in _stream(subject):
            return value
        raise AssertionError("unreachable")

    task = asyncio.ensure_future(first())
    await asyncio.sleep(0)
    subject.on_next(42)
    assert await task == 42
    assert not subject.observers


async def test_an_exception_in_the_loop_body_disposes() -> None:
    subject: Subject[int] = Subject()

    async def failing() -> None:
        async for value in _stream(subject):
            raise RuntimeError(f"bad {value}")

    task = asyncio.ensure_future(failing())
    await asyncio.sleep(0)
    subject.on_next(1)
    with pytest.raises(RuntimeError, match="bad 1"):
        await task
    assert not subject.observers


async def test_cancelling_the_reading_task_disposes() -> None:
    subject: Subject[int] = Subject()

    async def forever() -> None:
        async for _ in _stream(subject):
            pass

    task = asyncio.ensure_future(forever())
    await asyncio.sleep(0)
    assert subject.observers
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not subject.observers


async def test_aclose_and_async_with_dispose_explicitly() -> None:
    subject: Subject[int] = Subject()
    it = rxmqtt.aiter(subject)
    subject.on_next(1)
    await it.aclose()
    assert not subject.observers
    with pytest.raises(StopAsyncIteration):
        await anext(it)
    async with rxmqtt.aiter(subject) as again:
        assert subject.observers
        subject.on_next(2)
        assert await anext(again) == 2
    assert not subject.observers
    async with contextlib.aclosing(rxmqtt.aiter(subject)):
        pass
    assert not subject.observers


async def test_dropping_an_unread_iterator_disposes() -> None:
    subject: Subject[int] = Subject()
    it = rxmqtt.aiter(subject)
    assert subject.observers
    del it
    gc.collect()  # CPython frees it at once; this also covers other interpreters
    assert not subject.observers


async def test_two_readers_of_one_iterator_is_an_error() -> None:
    subject: Subject[int] = Subject()
    it = rxmqtt.aiter(subject)
    first = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="already waiting"):
        await anext(it)
    subject.on_next(1)
    assert await first == 1


async def test_values_from_another_thread_wake_the_reader() -> None:
    subject: Subject[int] = Subject()
    it = rxmqtt.aiter(subject)
    reader = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0)
    thread = threading.Thread(target=subject.on_next, args=(7,))
    thread.start()
    thread.join(5)
    assert await asyncio.wait_for(reader, 5) == 7


async def test_an_rx_pipeline_in_virtual_time() -> None:
    """Values scheduled on a TestScheduler: what arrives between two reads is buffered."""
    scheduler = TestScheduler()
    on_next, on_completed = ReactiveTest.on_next, ReactiveTest.on_completed
    source = scheduler.create_hot_observable(
        on_next(210, 1), on_next(220, 2), on_next(230, 3), on_next(240, 4), on_completed(300)
    )
    it = rxmqtt.aiter(source.pipe(ops.map(lambda x: x * 10)), buffer=2)
    scheduler.advance_to(215)
    assert await anext(it) == 10
    scheduler.advance_to(245)  # 20, 30, 40 arrive; the buffer keeps the last two
    assert it.dropped == 1
    assert [await anext(it), await anext(it)] == [30, 40]
    scheduler.advance_to(300)
    with pytest.raises(StopAsyncIteration):
        await anext(it)


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(1, 5),
    steps=st.lists(st.one_of(st.integers(0, 99), st.none()), max_size=60),
)
def test_the_slow_reader_policy_matches_its_model(size: int, steps: list[int | None]) -> None:
    """Any interleaving of pushes (ints) and reads (None): reads get what a deque of ``size``
    that evicts its oldest holds; every value is read, dropped or still buffered."""

    async def run() -> None:
        subject: Subject[int] = Subject()
        lost: list[int] = []
        it = rxmqtt.aiter(subject, buffer=size, on_drop=lost.append)
        model: deque[int] = deque()
        model_lost: list[int] = []
        read: list[int] = []
        pushed = 0
        for step in steps:
            if step is None:
                if model:
                    expected = model.popleft()
                    read.append(await anext(it))
                    assert read[-1] == expected
                continue
            pushed += 1
            subject.on_next(step)
            if len(model) == size:
                model_lost.append(model.popleft())
            model.append(step)
            assert it.buffered == len(model) <= size
        assert lost == model_lost
        assert it.dropped == len(lost)
        assert len(read) + it.dropped + it.buffered == pushed

    asyncio.run(run())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"buffer": 0}, ValueError, r"^buffer: must be >= 1, got 0"),
        ({"buffer": 1.5}, TypeError, r"^buffer: must be an int"),
        ({"buffer": True}, TypeError, r"^buffer: must be an int"),
        ({"on_drop": 3}, TypeError, r"^on_drop: must be callable"),
    ],
)
def test_bad_arguments_name_themselves(kwargs: dict[str, object], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        rxmqtt.aiter(reactivex.empty(), **kwargs)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^source: must be an Observable"):
        rxmqtt.aiter([1, 2])  # type: ignore[arg-type]


def test_a_stream_is_still_an_observable() -> None:
    subject: Subject[int] = Subject()
    stream = _stream(subject)
    assert isinstance(stream, Observable)
    got: list[int] = []
    stream.pipe(ops.map(lambda x: x + 1)).subscribe(got.append)
    subject.on_next(1)
    assert got == [2]
