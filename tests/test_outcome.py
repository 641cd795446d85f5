"""Outcome: what publish() returns. One value then completion, or an error; replayed to late
subscribers; awaitable from any thread; a faulty subscriber cannot reach the producer."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from reactivex import operators as ops
from reactivex.observer import Observer

from rxmqtt._outcome import Outcome


class _Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def on_next(self, value: object) -> None:
        self.events.append(("next", value))

    def on_error(self, error: Exception) -> None:
        self.events.append(("error", error))

    def on_completed(self) -> None:
        self.events.append(("completed", None))


def _subscribe(outcome: Outcome[int]) -> _Log:
    log = _Log()
    outcome.subscribe(log.on_next, log.on_error, log.on_completed)
    return log


def test_value_then_completion_to_subscribers_before_and_after() -> None:
    outcome: Outcome[int] = Outcome()
    early = _subscribe(outcome)
    assert early.events == []
    assert not outcome.settled
    outcome._resolve(7)
    late = _subscribe(outcome)
    assert early.events == late.events == [("next", 7), ("completed", None)]
    assert outcome.settled


def test_error_to_subscribers_before_and_after() -> None:
    outcome: Outcome[int] = Outcome()
    early = _subscribe(outcome)
    error = RuntimeError("refused")
    outcome._fail(error)
    late = _subscribe(outcome)
    assert early.events == late.events == [("error", error)]


def test_only_the_first_settlement_counts() -> None:
    outcome: Outcome[int] = Outcome()
    log = _subscribe(outcome)
    outcome._resolve(1)
    outcome._resolve(2)
    outcome._fail(RuntimeError("late"))
    assert log.events == [("next", 1), ("completed", None)]
    assert _subscribe(outcome).events == [("next", 1), ("completed", None)]


def test_an_observer_object_and_operators_work() -> None:
    outcome: Outcome[int] = Outcome()
    log = _Log()
    outcome.subscribe(Observer(log.on_next, log.on_error, log.on_completed))
    doubled: list[int] = []

    def double(value: int) -> int:
        return value * 2

    outcome.pipe(ops.map(double)).subscribe(doubled.append)
    outcome._resolve(21)
    assert log.events == [("next", 21), ("completed", None)]
    assert doubled == [42]


def test_disposed_before_settlement_hears_nothing() -> None:
    outcome: Outcome[int] = Outcome()
    log = _Log()
    subscription = outcome.subscribe(log.on_next, log.on_error, log.on_completed)
    subscription.dispose()
    outcome._resolve(1)
    assert log.events == []


def test_a_raising_subscriber_is_logged_and_harms_no_one(caplog: pytest.LogCaptureFixture) -> None:
    outcome: Outcome[int] = Outcome()
    completed: list[bool] = []

    def explode(_value: int) -> None:
        raise ValueError("subscriber bug")

    outcome.subscribe(explode, on_completed=lambda: completed.append(True))
    other = _subscribe(outcome)
    with caplog.at_level(logging.ERROR, logger="rxmqtt"):
        outcome._resolve(3)  # the producer is not unwound by the subscriber's exception
    assert "raised in on_next; ignored" in caplog.text
    assert completed == [True]
    assert other.events == [("next", 3), ("completed", None)]


def test_an_error_nobody_handles_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    outcome: Outcome[int] = Outcome()
    outcome.subscribe(lambda _v: None)
    with caplog.at_level(logging.ERROR, logger="rxmqtt"):
        outcome._fail(RuntimeError("broker said no"))
    assert "broker said no" in caplog.text


async def test_await_gives_the_value_or_raises_the_error() -> None:
    loop = asyncio.get_running_loop()
    good: Outcome[int] = Outcome()
    loop.call_soon(good._resolve, 5)
    assert await good == 5
    assert await good == 5, "awaiting a settled outcome replays it"
    bad: Outcome[int] = Outcome()
    loop.call_soon(bad._fail, LookupError("gone"))
    with pytest.raises(LookupError, match="gone"):
        await bad


async def test_await_while_another_thread_settles() -> None:
    outcome: Outcome[int] = Outcome()
    ready = threading.Event()

    def settle_elsewhere() -> None:
        ready.wait(5)
        outcome._resolve(11)

    worker = threading.Thread(target=settle_elsewhere)
    worker.start()
    try:
        waiting = asyncio.ensure_future(asyncio.wait_for(outcome, 5))
        await asyncio.sleep(0)  # the await is registered before the other thread settles
        ready.set()
        assert await waiting == 11
    finally:
        worker.join(5)


async def test_a_cancelled_await_does_not_break_settlement() -> None:
    outcome: Outcome[int] = Outcome()
    task = asyncio.ensure_future(asyncio.wait_for(outcome, 5))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    outcome._resolve(1)  # the cancelled future is skipped, nothing raises
    assert await outcome == 1


def test_blocking_run_and_composition_with_reactivex() -> None:
    """run() (for code without a loop) and ordinary reactivex composition see one value."""
    import reactivex

    outcome: Outcome[int] = Outcome()
    outcome._resolve(4)
    assert outcome.run() == 4
    merged: list[int] = []
    reactivex.merge(outcome, reactivex.just(5)).subscribe(merged.append)
    assert sorted(merged) == [4, 5]
    failed: Outcome[int] = Outcome()
    failed._fail(KeyError("nope"))
    with pytest.raises(KeyError):
        failed.run()


def test_disposing_one_of_two_identical_subscriptions_keeps_the_other() -> None:
    outcome: Outcome[int] = Outcome()
    seen: list[int] = []
    first = outcome.subscribe(seen.append)
    outcome.subscribe(seen.append)
    first.dispose()
    first.dispose()  # (a second dispose changes nothing)
    outcome._resolve(9)
    assert seen == [9]
