"""The connection panel: a coloured state badge and everything about the link's life.

Bound to ``connection_state`` (the badge) and ``lifecycle`` (endpoint, attempt, the countdown to
the next retry from ``retry_in``, session present, the last disconnect of an established link
and, apart from it, the last failed connect attempt). A timer only animates what the streams
said: the countdown and the time up or down.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QProgressBar, QVBoxLayout, QWidget

from rxmqtt import (
    Closed,
    Connected,
    ConnectFailed,
    Connecting,
    Connection,
    ConnectionState,
    Disconnect,
    Disconnected,
    GaveUp,
    LifecycleEvent,
    SessionLost,
)
from rxmqtt.qt import bind

from .style import badge_css, format_seconds

FAILED_REASON_CHARS = 40
"""A failed attempt's reason is cut to this on the panel (two lines); the tool tip has it all."""


def _value_label(text: str = "—") -> QLabel:
    label = QLabel(text)
    label.setProperty("role", "value")
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class StatusPanel(QGroupBox):
    """Where the connection is, why it last dropped, and when it will try again."""

    state_changed = Signal(object)
    """Re-emits every ``ConnectionState`` the badge shows (for tests and the plot)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Connection", parent)
        self.state = ConnectionState.DISCONNECTED
        self.last_retry_in: float | None = None
        """The ``retry_in`` of the latest failure, as the countdown started from it."""
        self.reconnects = 0
        self._retry_deadline: float | None = None
        self._retry_total = 0.0
        self._since: float | None = None
        self._gave_up: str | None = None

        self.badge = QLabel()
        self.badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.badge.setMinimumHeight(52)
        self.endpoint = _value_label()
        self.attempt = _value_label()
        self.countdown = _value_label()
        self.countdown_bar = QProgressBar()
        self.countdown_bar.setProperty("kind", "retry")
        self.countdown_bar.setRange(0, 1000)
        self.countdown_bar.setTextVisible(False)
        self.countdown_bar.setFixedHeight(8)
        self.session = _value_label()
        self.uptime = _value_label()
        self.reconnect_count = _value_label("0")
        self.disconnect_code = _value_label()
        self.disconnect_reason = _value_label()
        self.disconnect_reason.setWordWrap(True)
        self.disconnect_source = _value_label()
        self.failed_attempt = _value_label()
        """The last failed connect attempt (``ConnectFailed``): attempt, code, reason, source.
        Not a disconnect: the connection was never up."""
        self.failed_attempt.setWordWrap(True)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.setHorizontalSpacing(12)
        form.setVerticalSpacing(5)
        for caption, widget in (
            ("Endpoint", self.endpoint),
            ("Attempt", self.attempt),
            ("Next retry", self.countdown),
            ("", self.countdown_bar),
            ("Session present", self.session),
            ("Up / down for", self.uptime),
            ("Reconnects", self.reconnect_count),
            ("Last disconnect", self.disconnect_code),
            ("Reason", self.disconnect_reason),
            ("Source", self.disconnect_source),
            ("Last failed attempt", self.failed_attempt),
        ):
            label = QLabel(caption)
            label.setProperty("role", "muted")
            form.addRow(label, widget)
        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        layout.addWidget(self.badge)
        layout.addLayout(form)
        layout.addStretch(1)

        self._ticker = QTimer(self)
        self._ticker.setInterval(50)
        self._ticker.timeout.connect(self._tick)
        self._ticker.start()
        self._show_state(ConnectionState.DISCONNECTED)

    def bind_connection(self, connection: Connection, scope: QObject) -> None:
        """Follow ``connection`` until ``scope`` is destroyed."""
        self.endpoint.setText(str(connection.settings.all_endpoints()[0]))
        bind(connection.connection_state, self._show_state, owner=scope)
        bind(connection.lifecycle, self._on_event, owner=scope)

    # ------------------------------------------------------------------ slots

    def _show_state(self, state: ConnectionState) -> None:
        self.state = state
        self.badge.setText(state.name)
        self.badge.setStyleSheet(badge_css(state))
        # connection_state is distinct: every call is a transition, so the clock restarts.
        counting = state in (ConnectionState.CONNECTED, ConnectionState.RECONNECTING)
        if counting or state is ConnectionState.FAILED:
            self._since = time.monotonic()
        else:
            self._since = None
        self.state_changed.emit(state)
        self._tick()

    def _on_event(self, event: LifecycleEvent) -> None:
        match event:
            case Connecting(attempt=attempt, endpoint=endpoint):
                self.attempt.setText(f"#{attempt}")
                self.endpoint.setText(endpoint)
                self._stop_countdown("attempting now…")
            case Connected(session_present=present, endpoint=endpoint):
                self.endpoint.setText(endpoint)
                self.session.setText("yes" if present else "no (new session)")
                self._stop_countdown("—")
                self._gave_up = None
            case ConnectFailed(attempt=attempt, retry_in=retry_in, disconnect=disconnect):
                fatal = ", fatal" if disconnect.fatal else ""
                reason = disconnect.reason
                if len(reason) > FAILED_REASON_CHARS:  # the full text is in the tool tip
                    reason = reason[: FAILED_REASON_CHARS - 1].rstrip() + "…"
                self.failed_attempt.setText(
                    f"#{attempt}: {disconnect.code_text} {reason} "
                    f"({disconnect.source.value}{fatal})"
                )
                self.failed_attempt.setToolTip(str(disconnect))
                self._start_countdown(retry_in)
            case Disconnected(retry_in=retry_in, disconnect=disconnect):
                self._show_disconnect(disconnect)
                if retry_in is not None:
                    self.reconnects += 1
                    self.reconnect_count.setText(str(self.reconnects))
                    self._start_countdown(retry_in)
                else:
                    self._stop_countdown("—")
            case SessionLost():
                self.session.setText("no: session lost, re-subscribing")
            case GaveUp(reason=reason):
                self._gave_up = reason
                self._stop_countdown("gave up")
            case Closed():
                self._stop_countdown("— (closed)")

    def _show_disconnect(self, disconnect: Disconnect) -> None:
        fatal = " (fatal)" if disconnect.fatal else ""
        self.disconnect_code.setText(f"{disconnect.code_text}{fatal}")
        self.disconnect_reason.setText(disconnect.reason)
        self.disconnect_source.setText(disconnect.source.value)

    def _start_countdown(self, retry_in: float | None) -> None:
        if retry_in is None:
            self._stop_countdown("none: giving up")
            return
        self.last_retry_in = retry_in
        self._retry_total = max(retry_in, 1e-6)
        self._retry_deadline = time.monotonic() + retry_in
        self._tick()

    def _stop_countdown(self, text: str) -> None:
        self._retry_deadline = None
        self.countdown.setText(text)
        self.countdown_bar.setValue(0)

    def _tick(self) -> None:
        now = time.monotonic()
        if self._retry_deadline is not None:
            left = max(0.0, self._retry_deadline - now)
            self.countdown.setText(f"retry in {format_seconds(left)}")
            self.countdown_bar.setValue(int(1000 * left / self._retry_total))
        if self._since is None:
            self.uptime.setText("—")
        else:
            verb = "up" if self.state is ConnectionState.CONNECTED else "down"
            self.uptime.setText(f"{verb} {format_seconds(now - self._since)}")
        if self._gave_up is not None:
            self.countdown.setToolTip(self._gave_up)
