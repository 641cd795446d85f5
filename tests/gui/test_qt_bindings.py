"""rxmqtt.qt: bind (GUI-thread delivery, hop from other threads, disposal with the owner, slot
errors contained), throttle/sample for display (virtual time), and run()."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
import qasync
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot
from reactivex.subject import Subject
from reactivex.testing import ReactiveTest, TestScheduler
from shiboken6 import Shiboken

from rxmqtt.qt import bind, run, sample_for_display, throttle_for_display

on_next, on_completed, on_error = (
    ReactiveTest.on_next,
    ReactiveTest.on_completed,
    ReactiveTest.on_error,
)


def test_bind_delivers_synchronously_on_the_gui_thread(qapp: QApplication) -> None:
    owner = QObject()
    subject: Subject[int] = Subject()
    seen: list[tuple[int, int]] = []
    binding = bind(subject, lambda x: seen.append((x, threading.get_ident())), owner=owner)
    subject.on_next(1)
    subject.on_next(2)
    assert seen == [(1, threading.get_ident()), (2, threading.get_ident())]
    assert not binding.is_disposed
    Shiboken.delete(owner)


def test_bind_is_disposed_when_the_owner_is_destroyed(qapp: QApplication) -> None:
    owner = QObject()
    subject: Subject[int] = Subject()
    seen: list[int] = []
    binding = bind(subject, seen.append, owner=owner)
    assert len(subject.observers) == 1
    Shiboken.delete(owner)
    assert binding.is_disposed
    assert subject.observers == [], "the subscription ended with the owner"
    subject.on_next(1)
    assert seen == []


def test_dispose_stops_delivery_and_is_idempotent(qapp: QApplication) -> None:
    owner = QObject()
    subject: Subject[int] = Subject()
    seen: list[int] = []
    binding = bind(subject, seen.append, owner=owner)
    binding.dispose()
    binding.dispose()
    subject.on_next(1)
    assert seen == []
    assert subject.observers == []
    Shiboken.delete(owner)  # the owner outlives the binding without trouble


def test_bind_hops_from_a_foreign_thread_with_a_queued_signal(
    qtbot: QtBot, qapp: QApplication
) -> None:
    owner = QObject()
    subject: Subject[int] = Subject()
    gui = threading.get_ident()
    seen: list[tuple[int, bool]] = []
    completed: list[bool] = []
    bind(
        subject,
        lambda x: seen.append((x, threading.get_ident() == gui)),
        owner=owner,
        on_completed=lambda: completed.append(threading.get_ident() == gui),
    )

    def produce() -> None:
        for value in range(5):
            subject.on_next(value)
        subject.on_completed()

    worker = threading.Thread(target=produce)
    worker.start()
    worker.join()
    assert seen == [], "nothing is delivered on the worker thread"
    qtbot.waitUntil(lambda: completed == [True], timeout=2000)
    assert seen == [(value, True) for value in range(5)]
    Shiboken.delete(owner)


def test_a_failing_slot_is_logged_and_never_reaches_the_producer(
    qapp: QApplication, caplog: pytest.LogCaptureFixture
) -> None:
    owner = QObject()
    subject: Subject[int] = Subject()
    seen: list[int] = []

    def slot(value: int) -> None:
        if value == 1:
            raise RuntimeError("widget bug")
        seen.append(value)

    with caplog.at_level(logging.ERROR, logger="rxmqtt.qt"):
        binding = bind(subject, slot, owner=owner)
        subject.on_next(1)  # must not raise here, inside the producer
        subject.on_next(2)
    assert seen == [2]
    assert not binding.is_disposed
    assert "widget bug" in caplog.text
    Shiboken.delete(owner)


def test_stream_errors_go_to_on_error_and_end_the_binding(qapp: QApplication) -> None:
    owner = QObject()
    subject: Subject[int] = Subject()
    errors: list[Exception] = []
    binding = bind(subject, lambda _: None, owner=owner, on_error=errors.append)
    boom = ValueError("refused")
    subject.on_error(boom)
    assert errors == [boom]
    assert binding.is_disposed
    Shiboken.delete(owner)


def test_bind_must_be_called_on_the_owners_thread(qapp: QApplication) -> None:
    owner = QObject()
    failures: list[Exception] = []

    def elsewhere() -> None:
        try:
            bind(Subject(), print, owner=owner)
        except RuntimeError as exc:
            failures.append(exc)

    worker = threading.Thread(target=elsewhere)
    worker.start()
    worker.join()
    assert len(failures) == 1
    assert "owner's thread" in str(failures[0])
    Shiboken.delete(owner)


def test_throttle_batches_a_burst_into_one_list_per_interval() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(210, "a"),
        on_next(220, "b"),
        on_next(255, "c"),
        on_next(400, "d"),
        on_next(430, "e"),
        on_completed(440),
    )
    result = scheduler.start(lambda: throttle_for_display(source, 50.0, scheduler=scheduler))
    assert result.messages == [
        on_next(260, ["a", "b", "c"]),
        on_next(440, ["d", "e"]),  # flushed by completion, before it
        on_completed(440),
    ]


def test_throttle_flushes_before_an_error_and_keeps_no_timer_while_idle() -> None:
    scheduler = TestScheduler()
    boom = RuntimeError("boom")
    source = scheduler.create_hot_observable(on_next(210, 1), on_error(600, boom))
    result = scheduler.start(lambda: throttle_for_display(source, 50.0, scheduler=scheduler))
    assert result.messages == [on_next(260, [1]), on_error(600, boom)]


def test_sample_keeps_the_newest_of_each_window() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(210, 1), on_next(220, 2), on_next(230, 3), on_next(300, 4)
    )
    result = scheduler.start(lambda: sample_for_display(source, 50.0, scheduler=scheduler))
    assert result.messages == [on_next(260, 3), on_next(350, 4)]


def test_throttle_rejects_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval"):
        throttle_for_display(Subject(), 0)


def test_run_awaits_main_on_a_qasync_loop_and_returns_its_code(qapp: QApplication) -> None:
    seen: list[bool] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()
        seen.append(isinstance(loop, qasync.QEventLoop))
        await asyncio.sleep(0.01)
        return 3

    assert run(main) == 3
    assert seen == [True]
    assert qapp.quitOnLastWindowClosed(), "run() restores the application's setting"


def test_run_cancels_leftover_tasks(qapp: QApplication) -> None:
    cancelled: list[bool] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    leftovers: list[asyncio.Task[None]] = []

    async def main() -> None:
        leftovers.append(asyncio.ensure_future(forever()))
        await asyncio.sleep(0)

    assert run(main) == 0
    assert cancelled == [True]
    assert leftovers[0].cancelled()


def test_throttle_defaults_to_the_running_loop(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    owner = QObject()
    subject: Subject[int] = Subject()
    batches: list[list[int]] = []
    bind(throttle_for_display(subject, 0.05), batches.append, owner=owner)
    for value in range(100):
        subject.on_next(value)
    assert batches == [], "nothing before the window closes"
    qtbot.waitUntil(lambda: batches == [list(range(100))], timeout=2000)
    Shiboken.delete(owner)


def test_throttle_without_a_loop_or_scheduler_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="scheduler="):
        throttle_for_display(Subject(), 0.1).subscribe(print)
