"""Running a command handler that may answer at once, later (``async def``) or as an observable.

:func:`follow_outcome` calls the handler and reports exactly one of ``on_value``/``on_error``
(an observable's last value, an awaitable's result, or the plain return value), and returns what
cancels the work still running (the executor uses it at an execution timeout or on dispose).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import Disposable


def follow_outcome(
    call: Callable[[], Any],
    *,
    on_value: Callable[[Any], None],
    on_error: Callable[[Exception], None],
    scheduler: abc.SchedulerBase,
) -> abc.DisposableBase | None:
    """Call the handler (``call()``) and follow what it returned; ``None`` when it finished
    synchronously, else the disposable that cancels it."""
    try:
        outcome = call()
    except Exception as exc:
        on_error(exc)
        return None
    try:
        if isinstance(outcome, Observable):
            return _follow_observable(outcome, on_value, on_error, scheduler)
        if inspect.isawaitable(outcome):
            return _follow_awaitable(outcome, on_value, on_error)
    except Exception as exc:  # e.g. an async handler but no running loop
        if inspect.iscoroutine(outcome):
            outcome.close()
        on_error(exc)
        return None
    on_value(outcome)
    return None


def _follow_observable(
    outcome: Observable[Any],
    on_value: Callable[[Any], None],
    on_error: Callable[[Exception], None],
    scheduler: abc.SchedulerBase,
) -> abc.DisposableBase:
    last: list[Any] = []

    def on_completed() -> None:
        if last:
            on_value(last[-1])
        else:
            on_error(ValueError("the handler's observable completed without a value"))

    return outcome.subscribe(
        on_next=lambda value: last.__setitem__(slice(None), [value]),
        on_error=on_error,
        on_completed=on_completed,
        scheduler=scheduler,
    )


def _follow_awaitable(
    outcome: Awaitable[Any],
    on_value: Callable[[Any], None],
    on_error: Callable[[Exception], None],
) -> abc.DisposableBase:
    future = asyncio.ensure_future(outcome)

    def done(finished: asyncio.Future[Any]) -> None:
        if finished.cancelled():
            return
        error = finished.exception()
        if error is None:
            on_value(finished.result())
        elif isinstance(error, Exception):
            on_error(error)
        else:  # KeyboardInterrupt/SystemExit: answer, then let it propagate in its task
            on_error(RuntimeError(repr(error)))

    def cancel() -> None:
        future.cancel()

    future.add_done_callback(done)
    return Disposable(cancel)
