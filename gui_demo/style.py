"""Look and feel: one palette for states, one stylesheet, a few formatting helpers.

Kept in one place so every panel speaks the same visual language: a state has the same colour
on the badge, in the event log and in the plot.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QFontDatabase, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

from rxmqtt import ConnectionState

STATE_COLOURS: dict[ConnectionState, str] = {
    ConnectionState.DISCONNECTED: "#78909c",
    ConnectionState.CONNECTING: "#1e88e5",
    ConnectionState.CONNECTED: "#2e7d32",
    ConnectionState.RECONNECTING: "#ef6c00",
    ConnectionState.CLOSED: "#546e7a",
    ConnectionState.FAILED: "#c62828",
}
"""Badge background per state (white text on each is readable)."""

EVENT_COLOURS: dict[str, str] = {
    "Connecting": "#1565c0",
    "Connected": "#2e7d32",
    "ConnectFailed": "#d84315",
    "Disconnected": "#d84315",
    "SessionLost": "#6a1b9a",
    "Reauthenticated": "#00838f",
    "Closed": "#546e7a",
    "GaveUp": "#c62828",
    "action": "#37474f",
}

RX_COLOUR = "#1e88e5"
TX_COLOUR = "#43a047"
QUEUE_COLOUR = "#fb8c00"
OFFLINE_SHADE = QColor(229, 57, 53, 38)
WINDOW_BG = "#f4f6f8"
PANEL_BG = "#ffffff"
BORDER = "#d5dbe1"
MUTED = "#607d8b"
TEXT = "#263238"

_STYLESHEET = f"""
QMainWindow, QWidget#central {{ background: {WINDOW_BG}; }}
QGroupBox {{
    background: {PANEL_BG};
    border: 1px solid {BORDER};
    border-radius: 8px;
    margin-top: 14px;
    padding: 10px 10px 8px 10px;
    font-weight: 600;
    color: {TEXT};
}}
QGroupBox::title {{
    subcontrol-origin: margin;
    left: 12px;
    padding: 0 4px;
    color: #455a64;
}}
QLabel {{ color: {TEXT}; }}
QLabel[role="muted"] {{ color: {MUTED}; }}
QLabel[role="value"] {{ font-weight: 600; }}
QLabel[role="counter"] {{ font-size: 15pt; font-weight: 700; }}
QPushButton {{
    background: #eceff1;
    border: 1px solid #b0bec5;
    border-radius: 5px;
    padding: 5px 10px;
    color: {TEXT};
}}
QPushButton:hover {{ background: #e3f2fd; }}
QPushButton[kind="danger"] {{ background: #ffebee; border-color: #ef9a9a; color: #b71c1c; }}
QPushButton[kind="good"] {{ background: #e8f5e9; border-color: #a5d6a7; color: #1b5e20; }}
QPushButton[kind="primary"] {{ background: #1e88e5; border-color: #1565c0; color: white; }}
QPushButton:disabled, QPushButton[kind]:disabled {{
    color: #9aa7b0; background: #f1f3f4; border-color: #dde3e7;
}}
QPushButton:checked {{ background: #1565c0; color: white; border-color: #0d47a1; }}
QProgressBar {{
    border: 1px solid {BORDER};
    border-radius: 5px;
    background: #eef1f4;
    text-align: center;
    height: 20px;
    color: {TEXT};
}}
QProgressBar::chunk {{ background: {QUEUE_COLOUR}; border-radius: 4px; }}
QProgressBar[kind="retry"]::chunk {{ background: #ffb74d; }}
QTableView, QListWidget, QPlainTextEdit {{
    background: {PANEL_BG};
    border: 1px solid {BORDER};
    border-radius: 4px;
    gridline-color: #eceff1;
    selection-background-color: #bbdefb;
    selection-color: {TEXT};
}}
QHeaderView::section {{
    background: #eceff1;
    border: none;
    border-bottom: 1px solid {BORDER};
    padding: 3px 6px;
    font-weight: 600;
    color: #455a64;
}}
QStatusBar {{ color: {MUTED}; }}
"""


def apply_theme(app: QApplication) -> None:
    """Fusion style, a light palette and the stylesheet: the same look on every platform
    (including ``offscreen``, where the native style would be bare)."""
    fusion = QStyleFactory.create("Fusion")
    if fusion is not None:
        app.setStyle(fusion)
    palette = app.palette()
    palette.setColor(QPalette.ColorRole.Window, QColor(WINDOW_BG))
    palette.setColor(QPalette.ColorRole.Base, QColor(PANEL_BG))
    palette.setColor(QPalette.ColorRole.Text, QColor(TEXT))
    palette.setColor(QPalette.ColorRole.WindowText, QColor(TEXT))
    app.setPalette(palette)
    font = app.font()
    font.setPointSize(10)
    app.setFont(font)
    app.setStyleSheet(_STYLESHEET)


def mono_font(point_size: int = 9) -> QFont:
    """The system's fixed-width font, for the event log and the message table."""
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    font.setPointSize(point_size)
    return font


def badge_css(state: ConnectionState) -> str:
    """The stylesheet of the state badge for ``state``."""
    return (
        f"background: {STATE_COLOURS[state]}; color: white; border-radius: 8px;"
        " padding: 8px 14px; font-size: 17pt; font-weight: 800; letter-spacing: 1px;"
    )


def format_seconds(seconds: float) -> str:
    """``0.42 s``, ``12.3 s``, ``4 min 05 s``: precise when short, calm when long."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def format_bytes(count: int) -> str:
    """``512 B``, ``12.5 KB``, ``3.2 MB`` (decimal units, as MQTT limits are stated)."""
    if count < 1000:
        return f"{count} B"
    if count < 1_000_000:
        return f"{count / 1000:.1f} KB"
    return f"{count / 1_000_000:.1f} MB"
