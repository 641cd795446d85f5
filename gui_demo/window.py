"""The control-room window: the panels, and the one connection they are bound to.

A :class:`~rxmqtt.Connection` cannot be restarted after ``close()``, so "Connect" makes a new one.
Every binding to a connection is owned by a per-connection scope ``QObject``; swapping the
connection destroys the scope, which disposes all of that connection's bindings at once, and the
panels bind to the new connection. The connection and its scope are always taken together (the
lifetime rules of :mod:`rxmqtt.qt`), so a Connect while the old one still closes can never lose
its own scope, and the panels follow one connection at a time. The window itself never
restarts: broker crashes, network cuts and policy changes are all handled by the live connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QMainWindow, QVBoxLayout, QWidget
from reactivex.scheduler.eventloop import AsyncIOScheduler
from shiboken6 import Shiboken

from rxmqtt import (
    Backoff,
    Connection,
    ConnectionSettings,
    ConnectionState,
    Jitter,
    QueuePolicy,
    ReconnectPolicy,
)

from .controls_panel import ControlsPanel, PoliciesPanel
from .event_log import EventLog
from .lab import Lab
from .messages_panel import MessageTable, SubscriptionsPanel
from .plot import LivePlot, Sample
from .publish_panel import PublishPanel
from .queue_panel import QueuePanel
from .status_panel import StatusPanel

SAMPLE_INTERVAL_MS = 250

DEMO_RECONNECT = ReconnectPolicy(
    backoff=Backoff(initial=0.5, maximum=5.0, jitter=Jitter.EQUAL), reset_after=10.0
)
"""Quick enough to watch, slow enough that the countdown is visible."""
DEMO_QUEUE = QueuePolicy(max_messages=5_000, max_bytes=2_000_000)


class ControlRoom(QMainWindow):
    """The demo window. Construct it, ``show()`` it, then :meth:`open_connection` (on the running
    qasync loop); ``await`` :meth:`shutdown` before the loop ends."""

    connection_changed = Signal(object)
    """The new :class:`Connection`, or ``None`` after a disconnect."""

    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        lab: Lab | None = None,
        reconnect: ReconnectPolicy = DEMO_RECONNECT,
        queue: QueuePolicy = DEMO_QUEUE,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.lab = lab
        self.connection: Connection | None = None
        self._scope: QObject | None = None
        self._closing_scope: QObject | None = None
        """The scope of a connection still closing (its last events still reach the panels)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()

        self.status = StatusPanel()
        self.controls = ControlsPanel(lab)
        self.policies = PoliciesPanel(reconnect, queue)
        self.plot = LivePlot()
        self.table = MessageTable()
        self.publisher = PublishPanel()
        self.subscriptions = SubscriptionsPanel(self.table)
        self.queue = QueuePanel()
        self.queue.set_policy(queue)
        self.log = EventLog()
        self._layout()

        self.controls.connect_requested.connect(self.open_connection)
        self.controls.disconnect_requested.connect(self.request_disconnect)
        self.controls.action.connect(self.log.note)
        self.policies.changed.connect(self.apply_policies)
        self._last_rx = 0
        self._last_tx = 0
        self._last_sample = time.monotonic()
        self._sampler = QTimer(self)
        self._sampler.setInterval(SAMPLE_INTERVAL_MS)
        self._sampler.timeout.connect(self._sample)
        self._sampler.start()

    def _layout(self) -> None:
        where = self.lab.describe() if self.lab else f"broker {self.settings.all_endpoints()[0]}"
        self.setWindowTitle(f"rxmqtt control room — {where}")
        self.statusBar().showMessage(
            f"{where} · client id {self.settings.client_id or '(broker-assigned)'}"
            f" · keep-alive {self.settings.keep_alive} s"
        )
        left = QVBoxLayout()
        left.addWidget(self.status)
        left.addWidget(self.controls)
        left.addWidget(self.policies)
        left.addStretch(1)
        live = QGroupBox("Live: message rates and queue depth")
        plot_box = QVBoxLayout(live)
        plot_box.setContentsMargins(6, 6, 6, 6)
        plot_box.addWidget(self.plot)
        bottom = QHBoxLayout()
        bottom.addWidget(self.publisher, 1)
        bottom.addWidget(self.subscriptions, 1)
        middle = QVBoxLayout()
        middle.addWidget(live, 5)
        middle.addWidget(self.table, 4)
        middle.addLayout(bottom, 3)
        right = QVBoxLayout()
        right.addWidget(self.queue)
        right.addWidget(self.log, 1)
        columns = QHBoxLayout()
        columns.setSpacing(10)
        columns.addLayout(left, 0)
        columns.addLayout(middle, 1)
        columns.addLayout(right, 0)
        central = QWidget()
        central.setObjectName("central")
        central.setLayout(columns)
        self.setCentralWidget(central)
        narrow: tuple[QWidget, ...] = (self.status, self.controls, self.policies)
        for panel in narrow:
            panel.setFixedWidth(350)
        wide: tuple[QWidget, ...] = (self.queue, self.log)
        for panel in wide:
            panel.setFixedWidth(380)

    # ------------------------------------------------------------------ connection

    def open_connection(self) -> Connection:
        """Create a Connection with the picked policies, bind every panel to it and start it.

        Must run on the running qasync loop (the GUI thread). Returns the open connection if
        there is one already.
        """
        if self.connection is not None:
            return self.connection
        # A connection still closing stops feeding the panels now: they follow the new one.
        _delete(self._closing_scope)
        self._closing_scope = None
        connection = Connection(
            self.settings,
            reconnect=self.policies.reconnect_policy(),
            queue=self.policies.queue_policy(),
        )
        scope = QObject(self)
        scope.setObjectName("connection-scope")
        scheduler = AsyncIOScheduler(asyncio.get_running_loop())  # the connection's loop
        self.connection, self._scope = connection, scope
        self.status.bind_connection(connection, scope)
        self.log.bind_connection(connection, scope)
        self.queue.bind_connection(connection, scope, scheduler)
        self.subscriptions.bind_connection(connection, scope, scheduler)
        self.publisher.set_connection(connection)
        connection.start()
        self.controls.set_connected(True)
        self.connection_changed.emit(connection)
        return connection

    def request_disconnect(self) -> None:
        """The Disconnect button: the connection and its scope leave the window now (a Connect
        right after makes a new one); the close itself goes on in the background."""
        detached = self._detach()
        if detached is not None:
            self._spawn(self._close(*detached))

    async def close_connection(self) -> None:
        """Close the connection (its last events still reach the panels), then dispose every
        binding to it by destroying its scope."""
        detached = self._detach()
        if detached is not None:
            await self._close(*detached)

    def _detach(self) -> tuple[Connection, QObject | None] | None:
        # The connection and its scope leave the window together, at once.
        connection, scope = self.connection, self._scope
        if connection is None:
            return None
        self.connection, self._scope, self._closing_scope = None, None, scope
        self.publisher.set_connection(None)
        self.controls.set_closing()
        return connection, scope

    async def _close(self, connection: Connection, scope: QObject | None) -> None:
        try:
            await connection.close()
        finally:
            if self._closing_scope is scope:
                self._closing_scope = None
            _delete(scope)
            if self.connection is None:  # no new connection was opened meanwhile
                self.controls.set_connected(False)
                self.connection_changed.emit(None)

    def apply_policies(self) -> None:
        """Apply the picked policies to the live connection (``Connection.configure``)."""
        try:
            reconnect = self.policies.reconnect_policy()
            queue = self.policies.queue_policy()
        except (TypeError, ValueError) as exc:
            self.policies.show_result(str(exc), error=True)
            return
        self.queue.set_policy(queue)
        summary = (
            f"jitter {reconnect.backoff.jitter.name}, backoff {reconnect.backoff.initial:g} to "
            f"{reconnect.backoff.maximum:g} s, max attempts {reconnect.max_attempts or '∞'}; "
            f"queue {queue.max_messages:,} msgs / {queue.max_bytes or 0:,} B, "
            f"{queue.overflow.name}, {queue.drain.name}"
        )
        connection = self.connection
        configure = getattr(connection, "configure", None)
        if connection is None or configure is None:
            self.policies.show_result("Applies to the next connection.")
            self.log.note(f"policies for the next connection: {summary}")
            return
        configure(reconnect=reconnect, queue=queue)
        self.policies.show_result("Applied to the live connection.")
        self.log.note(f"policies applied live: {summary}")

    # ------------------------------------------------------------------ plot feed

    def _sample(self) -> None:
        now = time.monotonic()
        elapsed = max(1e-3, now - self._last_sample)
        rx, tx = self.subscriptions.received, self.publisher.published
        self.plot.add_sample(
            Sample(
                t=now,
                rx_rate=(rx - self._last_rx) / elapsed,
                tx_rate=(tx - self._last_tx) / elapsed,
                depth=self.queue.stats.depth,
                online=self.status.state is ConnectionState.CONNECTED,
            )
        )
        self._last_rx, self._last_tx, self._last_sample = rx, tx, now
        self.controls.refresh()

    # ------------------------------------------------------------------ life

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self._closed.set()
        event.accept()

    async def wait_closed(self) -> None:
        """Until the user closes the window."""
        await self._closed.wait()

    async def shutdown(self) -> None:
        """Stop publishing and sampling, close the connection, finish pending actions."""
        self.publisher.stop_steady()
        self._sampler.stop()
        await self.close_connection()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _delete(scope: QObject | None) -> None:
    """Destroy a connection's scope now (on the GUI thread), ending every binding it owns."""
    if scope is not None and Shiboken.isValid(scope):
        Shiboken.delete(scope)
