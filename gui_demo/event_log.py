"""The event log: every ``lifecycle`` event, one coloured line each, plus the operator's actions.

Bounded (old lines fall off), so a flapping link cannot grow it without limit.
"""

from __future__ import annotations

import html
import time

from PySide6.QtCore import QObject
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QGroupBox, QPlainTextEdit, QVBoxLayout, QWidget

from rxmqtt import (
    Closed,
    Connected,
    ConnectFailed,
    Connecting,
    Connection,
    Disconnected,
    GaveUp,
    LifecycleEvent,
    Reauthenticated,
    SessionLost,
)
from rxmqtt.qt import bind

from .style import EVENT_COLOURS, MUTED, mono_font

MAX_LINES = 1000


def describe(event: LifecycleEvent) -> str:
    """One line of plain text for ``event``."""
    match event:
        case Connecting(attempt=attempt, endpoint=endpoint):
            return f"attempt {attempt} → {endpoint}"
        case Connected(session_present=present, endpoint=endpoint):
            return f"{endpoint} · session present: {'yes' if present else 'no'}"
        case ConnectFailed(attempt=attempt, retry_in=retry_in, disconnect=disconnect):
            return f"attempt {attempt}: {disconnect}{_retry(retry_in)}"
        case Disconnected(disconnect=disconnect, retry_in=retry_in):
            return f"{disconnect}{_retry(retry_in)}"
        case SessionLost():
            return "the broker had no session: re-subscribing every filter"
        case Reauthenticated(endpoint=endpoint, rounds=rounds):
            return f"{endpoint} · re-authenticated ({rounds} challenge rounds), link kept"
        case Closed():
            return "closed by the application"
        case GaveUp(reason=reason):
            return reason
    return repr(event)


def _retry(retry_in: float | None) -> str:
    return "" if retry_in is None else f" · retry in {retry_in:.2f} s"


class EventLog(QGroupBox):
    """A read-only, bounded, timestamped log of the connection's life."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Event log (lifecycle)", parent)
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setMaximumBlockCount(MAX_LINES)
        self.view.setFont(mono_font(9))
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.lines: list[str] = []
        """Plain-text copies of the last lines (bounded like the view), for tests."""
        layout = QVBoxLayout(self)
        layout.addWidget(self.view)

    def bind_connection(self, connection: Connection, scope: QObject) -> None:
        """Log ``connection``'s lifecycle until ``scope`` is destroyed."""
        bind(connection.lifecycle, self.log_event, owner=scope)

    def log_event(self, event: LifecycleEvent) -> None:
        """Append one lifecycle event."""
        kind = type(event).__name__
        self._append(kind, describe(event), EVENT_COLOURS.get(kind, MUTED))

    def note(self, text: str) -> None:
        """Append something the operator (or the scripted scenario) did."""
        self._append("▶", text, EVENT_COLOURS["action"])

    def _append(self, kind: str, text: str, colour: str) -> None:
        stamp = time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"
        self.lines.append(f"{stamp} {kind} {text}")
        del self.lines[:-MAX_LINES]
        self.view.appendHtml(
            f'<span style="color:{MUTED}">{stamp}</span>&nbsp;'
            f'<b style="color:{colour}">{html.escape(kind)}</b>&nbsp;'
            f"<span>{html.escape(text)}</span>"
        )
        self.view.moveCursor(QTextCursor.MoveOperation.End)
