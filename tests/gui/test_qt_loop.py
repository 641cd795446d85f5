"""rxmqtt.qt's event loop: no Qt timer outlives a cancel or a close, and a closed loop freed on
any thread is harmless (qasync's own loop crashes the GUI thread then: issue 15's segfault)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import qasync

if TYPE_CHECKING:
    from conftest import ThreadCensus
from PySide6.QtCore import QAbstractEventDispatcher
from PySide6.QtWidgets import QApplication

from rxmqtt import Connection, ConnectionSettings, ConnectionState
from rxmqtt.qt import new_event_loop, run
from rxmqtt.testing import MosquittoBroker

FREED_ELSEWHERE = """
import asyncio, gc, sys, threading
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
import qasync
from rxmqtt.qt import new_event_loop

app = QApplication([])
loop = new_event_loop(app) if sys.argv[1] == "rxmqtt" else qasync.QEventLoop(app)
asyncio.set_event_loop(loop)

async def main():
    loop.call_later(0.3, print, "never").cancel()  # cancelled: qasync keeps its Qt timer armed
    loop.call_later(0.4, print, "never")  # still pending when the loop closes

loop.run_until_complete(main())
asyncio.set_event_loop(None)
loop.close()
del loop  # a reference cycle (handles -> loop -> timers -> handles): only the collector frees it
collector = threading.Thread(target=gc.collect)  # as when a FaultProxy thread triggers a collection
collector.start()
collector.join()
QTimer.singleShot(800, app.quit)  # let the GUI thread reach the stranded timers' deadlines
app.exec()
print("survived", flush=True)
"""


def _freed_on_another_thread(loop_kind: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", FREED_ELSEWHERE, loop_kind],
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_closed_loop_freed_by_the_collector_on_another_thread_is_harmless() -> None:
    done = _freed_on_another_thread("rxmqtt")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["survived"]
    assert "Timers cannot be stopped from another thread" not in done.stderr


def test_the_same_with_qasyncs_own_loop_crashes_which_is_why_rxmqtt_qt_has_its_own() -> None:
    done = _freed_on_another_thread("qasync")
    assert done.returncode != 0, (
        "qasync's loop no longer strands its timers when freed off the GUI thread: "
        "rxmqtt.qt.new_event_loop's workaround may be revisited"
    )
    assert "Timers cannot be stopped from another thread" in done.stderr
    assert "survived" not in done.stdout


def _registered_timers(loop: asyncio.AbstractEventLoop) -> int:
    """What Qt's event dispatcher has registered for the loop (not what the loop believes)."""
    dispatcher = QAbstractEventDispatcher.instance()
    assert dispatcher is not None
    return len(dispatcher.registeredTimers(loop._qt_timers))  # type: ignore[attr-defined]


def test_a_cancelled_timed_callback_releases_its_qt_timer_at_once(qapp: QApplication) -> None:
    loop = new_event_loop(qapp)
    try:
        handles = [loop.call_later(60, print, n) for n in range(5)]
        assert all(isinstance(handle, asyncio.TimerHandle) for handle in handles)
        assert _registered_timers(loop) == 5
        for handle in handles[:3]:
            handle.cancel()
        assert _registered_timers(loop) == 2, "qasync's loop would still have all 5 armed"
    finally:
        loop.close()


def test_cancelling_a_handle_that_already_ran_spares_the_timer_that_reused_its_id(
    qapp: QApplication,
) -> None:
    loop = new_event_loop(qapp)
    ran: list[str] = []
    try:
        first = loop.call_later(0, ran.append, "first")
        loop.run_until_complete(asyncio.sleep(0.01))
        second = loop.call_later(0.02, ran.append, "second")  # Qt hands out freed ids again
        first.cancel()
        assert not second.cancelled()
        loop.run_until_complete(asyncio.sleep(0.1))
        assert ran == ["first", "second"]
    finally:
        loop.close()


def test_timed_callbacks_keep_asyncio_semantics(qapp: QApplication) -> None:
    loop = new_event_loop(qapp)
    try:
        started = loop.time()
        fired: dict[float, float] = {}
        delays = (0.05, 0.2, 0.45)  # a coarse Qt timer fires up to 5 % early: 10 ms at 0.2 s
        handles = [
            loop.call_at(started + delay, lambda d=delay: fired.setdefault(d, loop.time()))
            for delay in delays
        ]
        assert [h.when() for h in handles] == pytest.approx([started + d for d in delays])
        loop.run_until_complete(asyncio.sleep(0.6))
        assert sorted(fired) == list(delays)
        for handle, delay in zip(handles, delays, strict=True):
            assert fired[delay] >= handle.when(), f"the {delay} s callback ran early"
        with pytest.raises(TypeError, match="callable"):
            loop.call_later(1, "not a function")  # type: ignore[arg-type]
    finally:
        loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_later(1, print)
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_soon_threadsafe(print)


def test_new_event_loop_is_a_qasync_loop_and_needs_an_application() -> None:
    if QApplication.instance() is not None:
        loop = new_event_loop()
        try:
            assert isinstance(loop, qasync.QEventLoop)
        finally:
            loop.close()
        return
    with pytest.raises(RuntimeError, match="QApplication first"):
        new_event_loop()


@pytest.mark.broker
def test_run_leaves_no_thread_timer_or_loop_behind(
    qapp: QApplication,
    rxmqtt_mosquitto: MosquittoBroker,
    thread_census: ThreadCensus,
) -> None:
    before = thread_census.take()
    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> int:
        loops.append(asyncio.get_running_loop())
        # A host name (an IP literal skips the lookup): resolving it starts executor threads.
        settings = ConnectionSettings(
            host="localhost", port=rxmqtt_mosquitto.port, client_id="qt-run-1"
        )
        async with Connection(settings) as connection:
            await connection.wait_for(ConnectionState.CONNECTED, 5)
            during = thread_census.take()
        assert len(during) > len(before), "the lookup ran on the loop's executor threads"
        return 0

    assert run(main) == 0
    (loop,) = loops
    assert loop.is_closed()
    assert loop.armed_timers == 0  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    left = thread_census.left(before)
    assert not left, f"threads left behind by run(): {left}"
