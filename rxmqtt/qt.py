"""Qt helpers: bind streams to widgets, throttle floods for display, run an app under qasync.

rxmqtt's threading model has one asyncio loop; under qasync that loop *is* the Qt GUI thread, so
every stream of a :class:`~rxmqtt.Connection` already emits where widgets may be touched and no
``observe_on`` is needed. These helpers add what a GUI still has to get right:

- :func:`bind` subscribes a stream to a slot, hops to the GUI thread with a queued signal if an
  emission ever arrives on another thread, never lets a slot's exception travel back into the
  producer (it would land inside the connection's machinery), and disposes the subscription
  when the owning ``QObject`` is destroyed, so a closed widget is never called again.
- :func:`throttle_for_display` / :func:`sample_for_display` turn a 5,000 msg/s stream into a few
  updates per second, timed by the connection's scheduler (the loop), so a flood cannot freeze
  the UI.
- :func:`new_event_loop` is qasync's loop made safe to outlive: a cancelled timer is released at
  once, and ``close()`` kills every Qt timer and joins every executor thread on the GUI thread.
- :func:`run` creates the ``QApplication`` and that loop, runs the application's main coroutine
  and shuts everything down cleanly.

Lifetime rules an application must follow (``run`` and the control room do):

1. **One loop, closed on the GUI thread.** Use :func:`run`, or :func:`new_event_loop` and
   ``close()`` it on the GUI thread before dropping it. qasync's own loop keeps a Qt timer armed
   for every cancelled ``call_later`` until it fires, and its ``close()`` leaves them armed; the
   loop is a reference cycle, so the garbage collector frees it later on *whatever thread it
   runs on* (a FaultProxy thread, an executor thread). A ``QObject`` freed off its thread cannot
   unregister its timers, and the GUI thread then delivers the next timer event into freed
   memory: a segmentation fault in ``QTimerInfoList::activateTimers``.
2. **No Python-owned QObject with a running timer may become garbage.** Give every ``QTimer`` a
   parent (it then dies with its widget, on the GUI thread) or stop it before dropping it.
3. **Close a Connection before its loop**, and destroy what its bindings are owned by on the GUI
   thread (``deleteLater()`` or ``Shiboken.delete``), after the close: the close's last events
   (``Disconnected``, ``Closed``) still reach the widgets.
4. **Swap connections atomically.** Take the old connection *and* its binding owner in one step;
   a new connection made while the old one closes must get its own owner, never share one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from types import FrameType
from typing import Any, Generic, TypeVar, cast

import qasync
from PySide6.QtCore import (
    QCoreApplication,
    QObject,
    Qt,
    QThread,
    QTimer,
    QTimerEvent,
    Signal,
    Slot,
)
from PySide6.QtWidgets import QApplication
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import CompositeDisposable, SerialDisposable
from reactivex.scheduler.eventloop import AsyncIOScheduler
from shiboken6 import Shiboken

__all__ = [
    "Binding",
    "bind",
    "new_event_loop",
    "run",
    "sample_for_display",
    "throttle_for_display",
]

log = logging.getLogger("rxmqtt.qt")

_T = TypeVar("_T")


class _Relay(QObject):
    """Carries emissions from a foreign thread to the GUI thread. A child of the owner, so it
    lives in the owner's thread and dies with it, dropping whatever is still queued."""

    delivered = Signal(object)

    def __init__(self, owner: QObject, deliver: Callable[[object], None]) -> None:
        super().__init__(owner)
        self._deliver = deliver
        self.delivered.connect(self._on_delivered, Qt.ConnectionType.QueuedConnection)

    @Slot(object)
    def _on_delivered(self, item: object) -> None:
        self._deliver(item)


class _Terminal:
    """A completion or error notification travelling through the relay."""

    __slots__ = ("action",)

    def __init__(self, action: Callable[[], object]) -> None:
        self.action = action


class Binding(abc.DisposableBase, Generic[_T]):
    """A live subscription from a stream to a slot (made by :func:`bind`).

    Ends when the owner is destroyed, when the stream completes or errors, or on
    :meth:`dispose`. Disposing twice is harmless.
    """

    def __init__(
        self,
        slot: Callable[[_T], object],
        owner: QObject,
        on_error: Callable[[Exception], object] | None,
        on_completed: Callable[[], object] | None,
    ) -> None:
        self._slot = slot
        self._on_error = on_error
        self._on_completed = on_completed
        self._gui_thread = threading.get_ident()
        self._subscription = SerialDisposable()
        self._disposed = False
        self._relay: _Relay | None = _Relay(owner, self._deliver)
        self._owner_link = owner.destroyed.connect(self._owner_destroyed)

    @property
    def is_disposed(self) -> bool:
        """Whether the binding has ended (the slot will not be called again)."""
        return self._disposed

    def dispose(self, *_: object) -> None:
        """Unsubscribe now; emissions queued for the GUI thread and not yet delivered are
        dropped. (Extra arguments are ignored, so that it can be connected to any signal.)"""
        if self._disposed:
            return
        self._end()
        relay, self._relay = self._relay, None
        if relay is not None and Shiboken.isValid(relay):
            QObject.disconnect(self._owner_link)
            relay.deleteLater()

    def follow(self, source: Observable[_T]) -> None:
        """Subscribe to ``source`` (once, from :func:`bind`): its items reach the slot."""
        self._subscription.disposable = source.subscribe(
            self._on_next, self._on_stream_error, self._on_stream_completed
        )

    def _owner_destroyed(self, *_: object) -> None:
        # The owner is in the middle of its destructor and takes the relay (its child) with it:
        # touch neither, only stop the subscription.
        if not self._disposed:
            self._end()
            self._relay = None

    def _end(self) -> None:
        self._disposed = True
        self._subscription.dispose()

    # --------------------------------------------------------------- observer side

    def _on_next(self, item: _T) -> None:
        if not self._disposed:
            self._to_gui(item)

    def _on_stream_error(self, error: Exception) -> None:
        handler = self._on_error
        self._to_gui(_Terminal(lambda: handler(error) if handler else _log_error(error)))

    def _on_stream_completed(self) -> None:
        handler = self._on_completed
        self._to_gui(_Terminal(lambda: handler() if handler else None))

    def _to_gui(self, item: object) -> None:
        if threading.get_ident() == self._gui_thread:
            self._deliver(item)
            return
        relay = self._relay
        if relay is None:
            return
        with contextlib.suppress(RuntimeError):  # the owner and its relay died meanwhile
            relay.delivered.emit(item)

    def _deliver(self, item: object) -> None:
        if self._disposed:
            return
        if isinstance(item, _Terminal):
            self._guarded(item.action)
            self.dispose()
        else:
            self._guarded(lambda: self._slot(cast(_T, item)))

    def _guarded(self, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception:
            # The producer is the connection's own machinery: a widget bug must not break it.
            log.exception("a slot bound with rxmqtt.qt.bind raised; the binding stays active")


def _log_error(error: Exception) -> None:
    log.error("bound stream failed: %r", error)


def bind(
    source: Observable[_T],
    slot: Callable[[_T], object],
    *,
    owner: QObject,
    on_error: Callable[[Exception], object] | None = None,
    on_completed: Callable[[], object] | None = None,
) -> Binding[_T]:
    """Deliver every item of ``source`` to ``slot`` on the GUI thread while ``owner`` lives.

    Call it on the owner's (GUI) thread. Items emitted on that thread, which is every stream of a
    :class:`~rxmqtt.Connection` under qasync, reach the slot synchronously; items from another
    thread hop over with a queued signal. An exception from ``slot`` is logged and the binding
    stays active. ``on_error``/``on_completed`` (also called on the GUI thread) end the binding;
    by default an error is logged. Streams that replay a current value (``connection_state``,
    ``queue_stats``) call ``slot`` before this function returns.

    Returns the :class:`Binding`; dispose it to stop early.
    """
    if QThread.currentThread() != owner.thread():
        raise RuntimeError("bind: call it on the owner's thread (the GUI thread)")
    binding: Binding[_T] = Binding(slot, owner, on_error, on_completed)
    binding.follow(source)
    return binding


def _loop_scheduler() -> abc.SchedulerBase:
    try:
        return AsyncIOScheduler(asyncio.get_running_loop())
    except RuntimeError:
        raise RuntimeError(
            "throttle_for_display: no running asyncio loop; pass scheduler= (the connection's "
            "loop scheduler) or subscribe under rxmqtt.qt.run()"
        ) from None


def throttle_for_display(
    source: Observable[_T], interval: float, *, scheduler: abc.SchedulerBase | None = None
) -> Observable[list[_T]]:
    """Batch a fast stream for a widget: a list of everything that arrived, at most one list per
    ``interval`` seconds, nothing at all while the stream is quiet.

    The first item of a quiet period opens a window of ``interval``; its end emits the batch.
    Unlike ``sample``, no item is lost (a rate counter can count them all) and an idle stream
    keeps no timer running; unlike ``buffer_with_time``, no empty batches are emitted. Pending
    items are flushed before completion or an error. ``scheduler`` times the windows and must
    run on the thread ``source`` emits on: pass the connection's loop scheduler (the default is
    an ``AsyncIOScheduler`` on the running loop); a ``TestScheduler`` gives virtual time.
    """
    if interval <= 0:
        raise ValueError(f"interval: must be > 0 seconds, got {interval!r}")

    def subscribe(
        observer: abc.ObserverBase[list[_T]], default: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        timer_scheduler = scheduler or default or _loop_scheduler()
        pending: list[_T] = []
        window = SerialDisposable()
        open_window = False

        def flush(*_: object) -> None:
            nonlocal open_window, pending
            open_window = False
            if pending:
                batch, pending = pending, []
                observer.on_next(batch)

        def on_next(item: _T) -> None:
            nonlocal open_window
            pending.append(item)
            if not open_window:
                open_window = True
                window.disposable = timer_scheduler.schedule_relative(interval, flush)

        def on_error(error: Exception) -> None:
            window.dispose()
            flush()
            observer.on_error(error)

        def on_completed() -> None:
            window.dispose()
            flush()
            observer.on_completed()

        upstream = source.subscribe(on_next, on_error, on_completed, scheduler=default)
        return CompositeDisposable(upstream, window)

    return Observable(subscribe)


def sample_for_display(
    source: Observable[_T], interval: float, *, scheduler: abc.SchedulerBase | None = None
) -> Observable[_T]:
    """The latest item of a fast, state-like stream (queue statistics, a gauge), at most once
    per ``interval``: :func:`throttle_for_display` keeping only the newest of each batch."""
    return throttle_for_display(source, interval, scheduler=scheduler).pipe(ops.map(_newest))


def _newest(batch: list[_T]) -> _T:
    return batch[-1]


class _QtTimerHandle(asyncio.TimerHandle):
    """A ``call_later`` handle backed by one Qt timer, which ``cancel()`` releases at once."""

    __slots__ = ("timer_id",)

    timer_id: int


class _LoopTimers(QObject):
    """Every ``call_later`` of one loop, one Qt timer each. Lives on the GUI thread; a timer is
    killed when it fires, when its handle is cancelled and when the loop closes, so none is
    left armed for a later destruction on another thread to strand."""

    def __init__(self) -> None:
        super().__init__()
        self._handles: dict[int, _QtTimerHandle] = {}
        self.thread_id = threading.get_ident()
        """The (GUI) thread the timers live on: Qt kills a timer only there."""

    @property
    def armed(self) -> int:
        """How many Qt timers are registered for this loop."""
        return len(self._handles)

    def arm(self, handle: _QtTimerHandle, delay: float) -> None:
        # Rounded up, and precise (a coarse Qt timer may fire 5 % early): asyncio never runs a
        # timed callback before its deadline.
        interval = max(0, math.ceil(delay * 1000))
        handle.timer_id = self.startTimer(interval, Qt.TimerType.PreciseTimer)
        self._handles[handle.timer_id] = handle

    def disarm(self, handle: _QtTimerHandle) -> None:
        # Qt can only kill a timer on its own thread; from elsewhere (asyncio handles are not
        # thread-safe anyway) the cancelled handle is skipped and dropped when it fires.
        # Qt reuses the ids of killed timers: only a handle still armed owns its id.
        if (
            threading.get_ident() != self.thread_id
            or self._handles.get(handle.timer_id) is not handle
        ):
            return
        del self._handles[handle.timer_id]
        self.killTimer(handle.timer_id)

    def timerEvent(self, event: QTimerEvent) -> None:  # noqa: N802
        timer_id = event.timerId()
        self.killTimer(timer_id)
        handle = self._handles.pop(timer_id, None)
        if handle is not None and not handle.cancelled():
            handle._run()  # noqa: SLF001 - asyncio runs a TimerHandle only by _run (as its loop does)

    def close(self) -> None:
        for timer_id in self._handles:
            self.killTimer(timer_id)
        self._handles.clear()


class _QtEventLoop(qasync.QEventLoop):  # type: ignore[misc]
    """qasync's loop with timers that never outlive it (see :func:`new_event_loop`)."""

    def __init__(self, app: QCoreApplication, *, already_running: bool = False) -> None:
        self._qt_timers = _LoopTimers()
        super().__init__(app, already_running=already_running)

    @property
    def armed_timers(self) -> int:
        """How many Qt timers the loop has registered (0 once closed)."""
        return self._qt_timers.armed if Shiboken.isValid(self._qt_timers) else 0

    def call_later(
        self, delay: float, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        if asyncio.iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with call_later")
        if not callable(callback):
            raise TypeError(f"callback must be callable: {type(callback).__name__}")
        self._check_closed()
        handle = _QtTimerHandle(self.time() + delay, callback, args, self, context)
        self._qt_timers.arm(handle, delay)
        return handle

    def call_soon(
        self, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        return self.call_later(0, callback, *args, context=context)

    def call_at(
        self, when: float, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        return self.call_later(when - self.time(), callback, *args, context=context)

    def call_soon_threadsafe(
        self, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> None:
        self._check_closed()  # like asyncio's loops, instead of a silent drop
        super().call_soon_threadsafe(callback, *args, context=context)

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        if isinstance(handle, _QtTimerHandle) and Shiboken.isValid(self._qt_timers):
            self._qt_timers.disarm(handle)

    def close(self) -> None:
        """Close the loop: join the executor's threads (qasync), then kill every Qt timer and
        delete the loop's QObjects now, on the GUI thread, so that nothing is left for the
        garbage collector to free on another thread."""
        if self.is_closed():
            return
        if threading.get_ident() != self._qt_timers.thread_id:
            raise RuntimeError("close: call it on the loop's (GUI) thread")
        super().close()
        self._qt_timers.close()
        for timers in (self._qt_timers, self._timer):  # qasync's own, unused, but a QObject too
            if Shiboken.isValid(timers):
                Shiboken.delete(timers)


def new_event_loop(
    app: QCoreApplication | None = None, *, already_running: bool = False
) -> asyncio.AbstractEventLoop:
    """A qasync event loop for ``app`` (default: the existing application) that is safe to
    outlive.

    It differs from ``qasync.QEventLoop`` in what it leaves behind. Timed callbacks return real
    ``asyncio.TimerHandle`` objects, and cancelling one kills its Qt timer at once (qasync keeps
    it armed, holding the callback's objects, until it fires). ``close()``, which must run on
    the GUI thread, joins the executor's threads and kills every remaining Qt timer, so a closed
    loop can be freed on any thread. A qasync loop freed by the garbage collector on another
    thread strands its armed timers, and the GUI thread crashes on the next one.
    ``already_running`` (qasync's) attaches the loop to an application whose ``exec()`` is
    already running.
    """
    application = app or QCoreApplication.instance()
    if application is None:
        raise RuntimeError("new_event_loop: create the QApplication first")
    return _QtEventLoop(application, already_running=already_running)


def run(
    main: Callable[[], Awaitable[int | None]],
    *,
    argv: Sequence[str] | None = None,
    application_name: str | None = None,
) -> int:
    """Run a Qt application under qasync: create (or reuse) the ``QApplication`` and a qasync
    loop, await ``main()`` on it, then cancel leftover tasks and close the loop.

    ``main`` is a factory (called once the application exists, so it may create widgets); its
    return value is the exit code (``None`` means 0). Closing the last window does not stop the
    loop: ``main`` decides when the program ends, typically after awaiting its window's close
    and then closing its connection. Ctrl-C cancels ``main`` (exit code 130), so its
    ``finally`` blocks still run.
    """
    existing = QCoreApplication.instance()
    app = (
        cast(QApplication, existing)
        if existing is not None
        else QApplication(list(argv) if argv is not None else sys.argv)
    )
    if application_name:
        app.setApplicationName(application_name)
    quit_on_close = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)
    loop = new_event_loop(app)
    asyncio.set_event_loop(loop)
    try:
        code = loop.run_until_complete(_guarded(main))
        _cancel_leftovers(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
        app.setQuitOnLastWindowClosed(quit_on_close)
    return code


async def _guarded(main: Callable[[], Awaitable[int | None]]) -> int:
    """Await ``main()`` with Ctrl-C mapped to cancellation (Qt's loop would otherwise never let
    Python see SIGINT: a short timer wakes the interpreter so the handler can run)."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    previous: Callable[[int, FrameType | None], Any] | int | None = None
    wake = QTimer()
    on_main_thread = threading.current_thread() is threading.main_thread()
    if on_main_thread and task is not None:

        def on_sigint(signum: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(task.cancel)

        previous = signal.signal(signal.SIGINT, on_sigint)
        wake.timeout.connect(lambda: None)
        wake.start(200)
    try:
        return int(await main() or 0)
    except asyncio.CancelledError:
        return 130
    finally:
        wake.stop()
        if on_main_thread and previous is not None:
            signal.signal(signal.SIGINT, previous)


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
