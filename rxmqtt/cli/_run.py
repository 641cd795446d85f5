"""The CLI's commands on one asyncio loop: a Connection, its events, the status line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections import deque
from typing import TextIO

from reactivex.abc import DisposableBase

from ..connection import Connection
from ..lifecycle import ConnectionState, GaveUp, LifecycleEvent, next_state
from ..message import Message, PublishResult
from ..policies import Backoff, Jitter, ReconnectPolicy
from ..presets import preset as named_preset
from ..queue import DroppedMessage, QueueStats
from ..settings import ConnectionSettings
from ._terminal import Terminal, _isatty

_LIVE_REDRAW = 0.25
"""Seconds between redraws of the in-place status line on a terminal."""
_DEFAULT_PROGRESS = 5.0
_RATE_WINDOW = 2.0
_MAX_OUTSTANDING = 500
"""``pub`` without ``--rate`` keeps at most this many publishes unresolved (flow control)."""

CLI_RECONNECT = ReconnectPolicy(backoff=Backoff(initial=0.1, maximum=5.0, jitter=Jitter.FULL))
"""Without ``--preset``: someone is watching, so retry quickly."""


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


class CliRun:
    """One run of a command: owns the connection's subscriptions and the counters."""

    def __init__(
        self, args: argparse.Namespace, settings: ConnectionSettings, out: TextIO, err: TextIO
    ) -> None:
        self.args = args
        self.command: str = args.command
        live = _isatty(err)
        self.terminal = Terminal(out, err, live=live, quiet=args.quiet)
        if args.preset is not None:
            kwargs = named_preset(args.preset).connection_kwargs()
            self.conn = Connection(settings, **kwargs)
        else:
            self.conn = Connection(settings, reconnect=CLI_RECONNECT)
        self.stop = asyncio.Event()
        self.received = 0
        self.sent = 0
        self.acked = 0
        self.failed = 0
        self.dropped = 0
        self.gave_up: str | None = None
        self.state = self.conn.state
        self._state_since = 0.0
        self.stats = QueueStats(0, 0, 0, 0)
        self._subscriptions: list[DisposableBase] = []
        self._settled = asyncio.Event()

    # ------------------------------------------------------------------ events

    def _on_event(self, event: LifecycleEvent) -> None:
        # the state this event leads to, computed here rather than read from the connection,
        # so the line never depends on the order the connection's subscribers run in
        state = next_state(self.state, event)
        if state is not self.state:
            self._state_since = asyncio.get_running_loop().time()
        self.state = state
        self.terminal.event(self.state.name, str(event))
        if self.state is ConnectionState.FAILED and self.gave_up is None:
            self.gave_up = event.reason if isinstance(event, GaveUp) else str(event)
            self.stop.set()

    def _on_stats(self, stats: QueueStats) -> None:
        self.stats = stats

    def _on_dropped(self, dropped: DroppedMessage) -> None:
        self.dropped += 1

    def _on_message(self, message: Message) -> None:
        count = getattr(self.args, "count", None)
        if self.command == "sub" and count is not None and self.received >= count:
            return  # arrived while closing: --count means exactly that many
        self.received += 1
        if self.command == "sub":
            payload = message.payload.decode("utf-8", errors="backslashreplace")
            self.terminal.data(f"{message.topic} {payload}" if self.args.verbose else payload)
            if self.args.count is not None and self.received >= self.args.count:
                self.stop.set()

    def _status_text(self, rate: _Rate) -> str:
        in_state = asyncio.get_running_loop().time() - self._state_since
        state = f"{self.state.name} {in_state:.0f}s"
        stats = self.stats
        queue = f"queue {stats.depth} ({_format_bytes(stats.bytes)}), in flight {stats.in_flight}"
        if self.command == "pub":
            total = self.args.count
            done = f"{self.sent}/{total} sent, {self.acked} acked"
            return f"{state} | {done} | {rate.per_second(self.acked):.1f} msg/s | {queue}" + (
                f" | {self.failed} failed" if self.failed else ""
            )
        return (
            f"{state} | {self.received} msgs | {rate.per_second(self.received):.1f} msg/s"
            f" | {queue} | dropped {self.dropped}"
        )

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

    # ------------------------------------------------------------------ commands

    async def _publish_all(self) -> None:
        args = self.args
        loop = asyncio.get_running_loop()
        interval = 1.0 / args.rate if args.rate else 0.0
        next_at = loop.time()
        room = asyncio.Event()
        room.set()

        def resolved() -> None:
            if self.sent - self.acked - self.failed < _MAX_OUTSTANDING:
                room.set()
            if self.acked + self.failed >= args.count:
                self._settled.set()

        def on_ack(result: PublishResult) -> None:
            self.acked += 1
            resolved()

        def on_error(error: Exception) -> None:
            self.failed += 1
            self.terminal.event(self.state.name, f"publish failed: {error}")
            resolved()

        for n in range(1, args.count + 1):
            if self.stop.is_set():
                return
            payload = args.payload.replace("{n}", str(n))
            outcome = self.conn.publish(args.topic, payload, qos=args.qos, retain=args.retain)
            self.sent += 1
            outcome.subscribe(on_next=on_ack, on_error=on_error)
            if interval:
                next_at += interval
                delay = next_at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif self.sent - self.acked - self.failed >= _MAX_OUTSTANDING:
                room.clear()
                await room.wait()
            elif n % 100 == 0:
                await asyncio.sleep(0)
        await self._settled.wait()
        self.stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop.set)
        conn = self.conn
        self._subscriptions = [
            conn.lifecycle.subscribe(self._on_event),
            conn.queue_stats.subscribe(self._on_stats),
            conn.dropped.subscribe(self._on_dropped),
        ]
        started = self._state_since = loop.time()
        tasks: list[asyncio.Task[None]] = []
        try:
            async with conn:
                for topic_filter in getattr(self.args, "filters", []):
                    qos = getattr(self.args, "qos", 0)
                    self._subscriptions.append(
                        conn.messages(topic_filter, qos=qos).subscribe(self._on_message)
                    )
                tasks.append(loop.create_task(self._show_status()))
                if self.command == "pub":
                    tasks.append(loop.create_task(self._publish_all()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self.args.run_for)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for subscription in self._subscriptions:
                subscription.dispose()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
        return self._finish(loop.time() - started)

    def _finish(self, elapsed: float) -> int:
        self.terminal.finish()

        def rate(count: int) -> float:
            return count / elapsed if elapsed > 0 else 0.0

        if self.command == "pub":
            unresolved = self.sent - self.acked - self.failed
            summary = (
                f"published {self.sent} of {self.args.count}: {self.acked} acknowledged, "
                f"{self.failed} failed, {unresolved} unresolved in {elapsed:.1f}s "
                f"({rate(self.acked):.1f} msg/s)"
            )
            ok = self.acked == self.args.count
        else:
            summary = (
                f"received {self.received} messages in {elapsed:.1f}s "
                f"({rate(self.received):.1f} msg/s), dropped {self.dropped}"
            )
            ok = True
        if self.gave_up is not None:
            summary += f"; gave up: {self.gave_up}"
            ok = False
        self.terminal.event(self.state.name, summary)
        return 0 if ok else 1


async def run(
    args: argparse.Namespace, settings: ConnectionSettings, out: TextIO, err: TextIO
) -> int:
    """Run the parsed command; the exit status."""
    return await CliRun(args, settings, out, err).run()
