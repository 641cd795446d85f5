"""The CLI's commands on one asyncio loop: a Connection, its events, the status line, and the
exit status."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import threading
from collections import deque
from typing import BinaryIO, TextIO

from reactivex.abc import DisposableBase

from ..connection import Connection
from ..lifecycle import (
    Connected,
    ConnectFailed,
    Disconnected,
    GaveUp,
    LifecycleEvent,
    next_state,
)
from ..message import Message, PublishResult
from ..queue import DroppedMessage, QueueStats
from ._settings import Plan
from ._terminal import Terminal, _isatty

_LIVE_REDRAW = 0.25
"""Seconds between redraws of the in-place status line on a terminal."""
_DEFAULT_PROGRESS = 5.0
_RATE_WINDOW = 2.0
_MAX_OUTSTANDING = 500
"""``pub`` keeps at most this many publishes unresolved (flow control)."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_TIMEOUT = 27
"""``sub``: ``-W`` passed first (mosquitto_sub's status for a timeout)."""


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _format_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB"):
        if size < 1000 or unit == "MB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover


class _Rate:
    """Events per second over the last few seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._samples: deque[tuple[float, int]] = deque()

    def per_second(self, total: int) -> float:
        now = self._loop.time()
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[1][0] >= _RATE_WINDOW:
            self._samples.popleft()
        then, before = self._samples[0]
        return (total - before) / (now - then) if now > then else 0.0


def _stdin_lines(loop: asyncio.AbstractEventLoop, stdin: BinaryIO) -> asyncio.Queue[bytes | None]:
    """Lines of ``stdin`` as they arrive (``None`` at the end), read by a daemon thread so that
    neither the loop nor the exit waits for a blocked ``readline()``."""
    lines: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=_MAX_OUTSTANDING)

    def put(item: bytes | None) -> None:
        future = asyncio.run_coroutine_threadsafe(lines.put(item), loop)
        with contextlib.suppress(Exception):  # the loop ended first: nobody reads any more
            future.result()

    def read() -> None:
        try:
            for line in iter(stdin.readline, b""):
                put(line.rstrip(b"\r\n"))
        except (OSError, ValueError):
            pass
        put(None)

    threading.Thread(target=read, name="rxmqtt-stdin", daemon=True).start()
    return lines


class CliRun:
    """One run of a command: owns the connection's subscriptions, the counters and the exit
    status (the first reason to stop wins)."""

    def __init__(
        self,
        args: argparse.Namespace,
        plan: Plan,
        out: TextIO,
        err: TextIO,
        *,
        payload: bytes | None = None,
        stdin: BinaryIO | None = None,
    ) -> None:
        self.args = args
        self.plan = plan
        self.command: str = args.command
        self.payload = payload
        self.stdin = stdin
        self.terminal = Terminal(out, err, live=_isatty(err), quiet=not args.debug)
        self._err = err
        self.conn = Connection(plan.settings, reconnect=plan.reconnect, **plan.connection_kwargs)
        self.received = 0
        self.sent = 0
        self.acked = 0
        self.failed = 0
        self.dropped = 0
        self.state = self.conn.state
        self.connected_once = False
        self.last_problem: str | None = None
        self.stats = QueueStats(0, 0, 0, 0)
        self._state_since = 0.0
        self._subscriptions: list[DisposableBase] = []
        self._stop = asyncio.Event()
        self._status: int | None = None
        self._connected = asyncio.Event()

    # ------------------------------------------------------------------ the end

    def _end(self, status: int, error: str | None = None) -> None:
        """Stop the run with ``status``; ``error`` is printed as one line (always, not only with
        ``-d``). Only the first call counts."""
        if self._status is not None:
            return
        self._status = status
        if error is not None:
            self.terminal.finish()
            self._err.write(f"rxmqtt {self.command}: error: {error}\n")
            self._err.flush()
        self._stop.set()

    def stop(self) -> None:
        """Ctrl-C / SIGTERM: a clean stop."""
        self._end(EXIT_OK)

    # ------------------------------------------------------------------ events

    def _endpoint(self) -> str:
        endpoint = self.plan.settings.all_endpoints()[0]
        return str(endpoint)

    def _on_event(self, event: LifecycleEvent) -> None:
        # the state this event leads to, computed here rather than read from the connection,
        # so the line never depends on the order the connection's subscribers run in
        state = next_state(self.state, event)
        if state is not self.state:
            self._state_since = asyncio.get_running_loop().time()
        self.state = state
        self.terminal.event(self.state.name, str(event))
        if isinstance(event, Connected):
            self.connected_once = True
            self._connected.set()
        elif isinstance(event, ConnectFailed | Disconnected):
            self.last_problem = str(event.disconnect)
        if isinstance(event, GaveUp):
            if event.disconnect is not None:
                self.last_problem = str(event.disconnect)
            if self.connected_once:
                self._end(EXIT_FAILED, f"gave up: {self.last_problem or event.reason}")
            else:
                self._end(
                    EXIT_FAILED,
                    f"could not connect to {self._endpoint()}: {self.last_problem or event.reason}",
                )

    def _on_stats(self, stats: QueueStats) -> None:
        self.stats = stats

    def _on_dropped(self, dropped: DroppedMessage) -> None:
        self.dropped += 1

    def _on_message(self, message: Message) -> None:
        count = getattr(self.args, "count", None)
        if count is not None and self.received >= count:
            return  # arrived while closing: -C means exactly that many
        self.received += 1
        if self.command == "sub":
            prefix = (message.topic.encode() + b" ") if self.args.verbose else b""
            self.terminal.data(prefix + message.payload)
            if count is not None and self.received >= count:
                self._end(EXIT_OK)

    def _on_subscribe_error(self, error: Exception) -> None:
        self._end(EXIT_FAILED, str(error))

    # ------------------------------------------------------------------ status line (-d)

    def _status_text(self, rate: _Rate) -> str:
        in_state = asyncio.get_running_loop().time() - self._state_since
        state = f"{self.state.name} {in_state:.0f}s"
        stats = self.stats
        queue = f"queue {stats.depth} ({_format_bytes(stats.bytes)}), in flight {stats.in_flight}"
        if self.command == "pub":
            done = f"{self.sent} sent, {self._acked_text()}"
            return f"{state} | {done} | {rate.per_second(self.acked):.1f} msg/s | {queue}" + (
                f" | {self.failed} failed" if self.failed else ""
            )
        return (
            f"{state} | {_plural(self.received, 'msg')} | "
            f"{rate.per_second(self.received):.1f} msg/s | {queue} | dropped {self.dropped}"
        )

    def _acked_text(self) -> str:
        return f"{self.acked} written (QoS 0)" if self.args.qos == 0 else f"{self.acked} acked"

    async def _show_status(self) -> None:
        loop = asyncio.get_running_loop()
        rate = _Rate(loop)
        if self.terminal.live:
            interval = _LIVE_REDRAW
        else:
            progress = self.args.progress
            interval = _DEFAULT_PROGRESS if progress is None else progress
            if interval == 0:
                return
        while True:
            await asyncio.sleep(interval)
            self.terminal.status(self._status_text(rate))

    # ------------------------------------------------------------------ pub

    async def _publish_all(self) -> None:
        args = self.args
        topic = self.plan.topic
        assert topic is not None
        room = asyncio.Event()
        room.set()
        settled = asyncio.Event()
        reading = True

        def resolved() -> None:
            if self.sent - self.acked - self.failed < _MAX_OUTSTANDING:
                room.set()
            if not reading and self.acked + self.failed >= self.sent:
                settled.set()

        def on_ack(result: PublishResult) -> None:
            self.acked += 1
            resolved()

        def on_error(error: Exception) -> None:
            self.failed += 1
            self._end(EXIT_FAILED, str(error))
            resolved()

        async def publish(payload: bytes) -> None:
            if self.sent - self.acked - self.failed >= _MAX_OUTSTANDING:
                room.clear()
                await room.wait()
            outcome = self.conn.publish(topic, payload, qos=args.qos, retain=args.retain)
            self.sent += 1
            outcome.subscribe(on_next=on_ack, on_error=on_error)

        await self._connected.wait()
        if self.payload is not None:
            for n in range(args.repeat):
                if n and args.repeat_delay:
                    await asyncio.sleep(args.repeat_delay)
                await publish(self.payload)
        else:
            assert self.stdin is not None
            lines = _stdin_lines(asyncio.get_running_loop(), self.stdin)
            while (line := await lines.get()) is not None:
                if line:  # as mosquitto_pub -l: blank lines are not sent
                    await publish(line)
        reading = False
        resolved()
        await settled.wait()
        self._end(EXIT_OK if self.failed == 0 else EXIT_FAILED)

    # ------------------------------------------------------------------ the run

    def _timed_out(self) -> None:
        timeout = self.args.timeout
        if not self.connected_once:
            last = f" (last: {self.last_problem})" if self.last_problem else ""
            self._end(
                EXIT_FAILED, f"not connected to {self._endpoint()} within {timeout:g} s{last}"
            )
        elif self.command == "sub":
            self._end(EXIT_TIMEOUT, f"timed out after {timeout:g} s")
        elif self.command == "pub":
            unresolved = self.sent - self.acked - self.failed
            self._end(
                EXIT_FAILED,
                f"timed out after {timeout:g} s: {unresolved} of {self.sent} publishes unresolved",
            )
        else:
            self._end(EXIT_OK)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.stop)
        conn = self.conn
        self._subscriptions = [
            conn.lifecycle.subscribe(self._on_event),
            conn.queue_stats.subscribe(self._on_stats),
            conn.dropped.subscribe(self._on_dropped),
        ]
        started = self._state_since = loop.time()
        tasks: list[asyncio.Task[None]] = []
        timer = loop.call_later(self.args.timeout, self._timed_out) if self.args.timeout else None
        try:
            async with conn:
                for topic_filter in self.plan.filters:
                    qos = getattr(self.args, "qos", 0)
                    self._subscriptions.append(
                        conn.messages(topic_filter, qos=qos).subscribe(
                            self._on_message, self._on_subscribe_error
                        )
                    )
                tasks.append(loop.create_task(self._show_status()))
                if self.command == "pub":
                    tasks.append(loop.create_task(self._publish_all()))
                    tasks[-1].add_done_callback(self._task_done)
                await self._stop.wait()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            if timer is not None:
                timer.cancel()
            for subscription in self._subscriptions:
                subscription.dispose()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)
        self._summary(loop.time() - started)
        return EXIT_OK if self._status is None else self._status

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._end(EXIT_FAILED, f"{type(task.exception()).__name__}: {task.exception()}")

    def _summary(self, elapsed: float) -> None:
        """With ``-d``: one closing line (what was done, how fast)."""
        self.terminal.finish()

        def rate(count: int) -> float:
            return count / elapsed if elapsed > 0 else 0.0

        if self.command == "pub":
            unresolved = self.sent - self.acked - self.failed
            summary = (
                f"published {_plural(self.sent, 'message')}: {self._acked_text()}, "
                f"{self.failed} failed, {unresolved} unresolved in {elapsed:.1f}s "
                f"({rate(self.acked):.1f} msg/s)"
            )
        else:
            summary = (
                f"received {_plural(self.received, 'message')} in {elapsed:.1f}s "
                f"({rate(self.received):.1f} msg/s), dropped {self.dropped}"
            )
        self.terminal.event(self.state.name, summary)
