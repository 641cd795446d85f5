"""A connection on a private asyncio loop in a daemon thread, for programs without asyncio."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future as ThreadFuture
from typing import Any, Protocol, Self


class _Startable(Protocol):
    def start(self) -> None: ...

    def close(self) -> Coroutine[Any, Any, None]: ...


class ThreadRunner:
    """Runs a connection on a private loop in a daemon thread (see
    :meth:`Connection.start_in_thread`); ``stop()`` closes it and joins the thread."""

    def __init__(self, connection: _Startable) -> None:
        self._connection = connection
        self._loop = asyncio.new_event_loop()
        started: ThreadFuture[None] = ThreadFuture()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="rxmqtt-loop", daemon=True
        )
        self._thread.start()
        started.result()

    def _run(self, started: ThreadFuture[None]) -> None:
        asyncio.set_event_loop(self._loop)

        def begin() -> None:
            try:
                self._connection.start()
            except BaseException as exc:
                started.set_exception(exc)
            else:
                started.set_result(None)

        self._loop.call_soon(begin)
        self._loop.run_forever()
        self._loop.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The private loop the connection runs on."""
        return self._loop

    def stop(self, timeout: float = 5.0) -> None:
        """Close the connection and stop the thread."""
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._connection.close(), self._loop)
        try:
            future.result(timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
