"""GUI tests: offscreen Qt, a qasync loop per test on pytest-qt's QApplication, a real Mosquitto.

``QT_QPA_PLATFORM`` is set before anything imports Qt. The ``qloop`` fixture makes a qasync loop
that counts as *running* on the already existing ``QApplication``, so the connection starts
synchronously from a test and every asyncio callback runs whenever Qt processes events, which
``qtbot.waitUntil`` does: no fixed sleeps, no nested ``run_until_complete``.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot
from shiboken6 import Shiboken

from gui_demo.lab import Lab
from gui_demo.window import ControlRoom
from rxmqtt import (
    Backoff,
    ConnectionSettings,
    ConnectionState,
    Jitter,
    QueuePolicy,
    ReconnectPolicy,
)
from rxmqtt.qt import new_event_loop

_T = TypeVar("_T")
_ids = itertools.count()

KEEP_ALIVE = 2
"""Seconds; a black-holed link must be noticed within 1.5 x this."""
RETRY = 0.8
"""The fixed (unjittered) backoff of the test window, so its countdown is predictable."""
TEST_RECONNECT = ReconnectPolicy(
    backoff=Backoff(initial=RETRY, maximum=RETRY, jitter=Jitter.NONE), reset_after=30.0
)
TEST_QUEUE = QueuePolicy(max_messages=1_000, max_bytes=1_000_000)


@pytest.fixture
def qloop(qapp: QApplication) -> Iterator[asyncio.AbstractEventLoop]:
    """rxmqtt.qt's loop, marked running, driven by Qt's event processing; closed afterwards, so
    it leaves no Qt timer and no executor thread behind."""
    loop = new_event_loop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        # Not loop.stop(): it calls QApplication.exit(), which with no exec() running leaves Qt
        # quitting, so every later test's event processing would be cut short. Mark the loop
        # stopped the way qasync's own run_forever() does on its way out instead.
        loop._QEventLoop__is_running = False  # type: ignore[attr-defined]
        asyncio.events._set_running_loop(None)
        qapp.aboutToQuit.disconnect(loop._after_run_forever)  # type: ignore[attr-defined]
        loop.close()
        asyncio.set_event_loop(None)


class AsyncRunner(Protocol):
    def __call__(self, coro: Coroutine[Any, Any, _T], timeout: float = 5.0) -> _T: ...


def _run_async(qtbot: QtBot, coro: Coroutine[Any, Any, _T], timeout: float = 5.0) -> _T:
    task = asyncio.ensure_future(coro)
    qtbot.waitUntil(task.done, timeout=int(timeout * 1000))
    return task.result()


@pytest.fixture
def run_async(qtbot: QtBot, qloop: asyncio.AbstractEventLoop) -> AsyncRunner:
    """``run_async(coro)``: run it on the qasync loop, processing Qt events until done."""

    def run(coro: Coroutine[Any, Any, _T], timeout: float = 5.0) -> _T:
        return _run_async(qtbot, coro, timeout)

    return run


@pytest.fixture
def lab() -> Iterator[Lab]:
    """The embedded lab: Mosquitto behind a FaultProxy; both closed at teardown."""
    lab = Lab().start()
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def room(qtbot: QtBot, qloop: asyncio.AbstractEventLoop, lab: Lab) -> Iterator[ControlRoom]:
    """A shown control room, connected through the lab's proxy; shut down at teardown."""
    settings = ConnectionSettings(
        host=lab.host,
        port=lab.port,
        client_id=f"gui-test-{os.getpid()}-{next(_ids)}",
        keep_alive=KEEP_ALIVE,
        connect_timeout=2.0,
    )
    window = ControlRoom(settings, lab=lab, reconnect=TEST_RECONNECT, queue=TEST_QUEUE)
    window.controls.auto_restart.setValue(0.0)  # the tests decide when the broker returns
    window.show()
    window.open_connection()
    qtbot.waitUntil(lambda: window.status.state is ConnectionState.CONNECTED, timeout=5000)
    try:
        yield window
    finally:
        # Not qtbot.addWidget: pytest-qt would delete the window before this teardown runs.
        _run_async(qtbot, window.shutdown())
        window.close()
        Shiboken.delete(window)


QT_POOL_WORKER = "Thread (pooled)"
"""The name Qt gives its thread pools' workers. Qt's process-wide pools (QImage conversion on
the GUI pool, the global pool) start them on first use and keep idle ones for 30 s: nothing a
test starts or could stop. Our own QThreads (qasync's ``_QThreadWorker``) are counted."""


def native_threads() -> dict[int, str]:
    """Every thread of this process, by kernel id, with its name: Python's and Qt's (qasync's
    executor threads are QThreads that ``threading.enumerate()`` does not list)."""
    threads = {}
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):  # it ended while we looked
            threads[int(task.name)] = (task / "comm").read_text().strip()
    return threads


def threads_left(before: dict[int, str], grace: float = 2.0) -> list[str]:
    """Names of the threads started since ``before`` that are still running after ``grace``
    seconds (a joined thread's kernel task can outlive ``join()``/``QThread.wait()`` briefly)."""
    deadline = time.monotonic() + grace
    while True:
        extra = {
            tid: name
            for tid, name in native_threads().items()
            if tid not in before and name != QT_POOL_WORKER
        }
        if not extra or time.monotonic() >= deadline:
            return sorted(extra.values())
        time.sleep(0.01)


class ThreadCensus:
    """Counts the process's threads for a test: :meth:`take` a snapshot, later :meth:`left`."""

    take = staticmethod(native_threads)
    left = staticmethod(threads_left)


@pytest.fixture
def thread_census() -> ThreadCensus:
    return ThreadCensus()


@pytest.fixture(autouse=True)
def no_thread_left_running() -> Iterator[None]:
    """Every test stops what it started: the lab's proxy thread, flooders, workers, and the
    loop's executor threads (counted by the kernel, so QThreads count too)."""
    before = set(threading.enumerate())
    native_before = native_threads()
    yield
    left = [thread for thread in threading.enumerate() if thread not in before]
    for thread in left:
        thread.join(timeout=2.0)
    alive = [thread.name for thread in left if thread.is_alive()]
    assert not alive, f"threads left running: {alive}"
    native_left = threads_left(native_before)
    assert not native_left, f"native threads left running: {native_left}"
