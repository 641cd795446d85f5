"""The offline-queue panel: depth and bytes gauges, dropped/drained/in-flight counters.

``queue_stats`` changes on every publish, so it is sampled for display (ten updates a second at
most); drops arrive batched with their reasons.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QGridLayout, QGroupBox, QLabel, QProgressBar, QVBoxLayout, QWidget
from reactivex import abc

from rxmqtt import Connection, DroppedMessage, QueuePolicy, QueueStats
from rxmqtt.qt import bind, sample_for_display, throttle_for_display

from .style import format_bytes

DISPLAY_INTERVAL = 0.1


def _counter(text: str = "0") -> QLabel:
    label = QLabel(text)
    label.setProperty("role", "counter")
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    return label


def _caption(text: str) -> QLabel:
    label = QLabel(text)
    label.setProperty("role", "muted")
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    return label


class QueuePanel(QGroupBox):
    """What waits for the broker while it is away, and what a policy had to throw away."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Offline queue", parent)
        self.stats = QueueStats(depth=0, bytes=0, dropped=0, drained=0)
        self._limit_messages: int | None = None
        self._limit_bytes: int | None = None

        self.depth_bar = QProgressBar()
        self.bytes_bar = QProgressBar()
        self.dropped = _counter()
        self.drained = _counter()
        self.in_flight = _counter()
        self.last_drop = QLabel("no drops")
        self.last_drop.setProperty("role", "muted")
        self.last_drop.setWordWrap(True)

        grid = QGridLayout()
        grid.setVerticalSpacing(4)
        grid.addWidget(QLabel("Depth"), 0, 0)
        grid.addWidget(self.depth_bar, 0, 1, 1, 2)
        grid.addWidget(QLabel("Bytes"), 1, 0)
        grid.addWidget(self.bytes_bar, 1, 1, 1, 2)
        for column, (caption, widget) in enumerate(
            (("dropped", self.dropped), ("drained", self.drained), ("in flight", self.in_flight))
        ):
            grid.addWidget(widget, 2, column)
            grid.addWidget(_caption(caption), 3, column)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(2, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addWidget(self.last_drop)
        layout.addStretch(1)
        self._render()

    def set_policy(self, policy: QueuePolicy) -> None:
        """Scale the gauges to the policy's bounds (an unbounded axis shows a busy bar)."""
        self._limit_messages = policy.max_messages
        self._limit_bytes = policy.max_bytes
        self._render()

    def bind_connection(
        self, connection: Connection, scope: QObject, scheduler: abc.SchedulerBase
    ) -> None:
        """Show ``connection``'s queue until ``scope`` is destroyed."""
        bind(
            sample_for_display(connection.queue_stats, DISPLAY_INTERVAL, scheduler=scheduler),
            self.show_stats,
            owner=scope,
        )
        bind(
            throttle_for_display(connection.dropped, DISPLAY_INTERVAL, scheduler=scheduler),
            self._show_drops,
            owner=scope,
        )

    def show_stats(self, stats: QueueStats) -> None:
        self.stats = stats
        self._render()

    def _show_drops(self, drops: list[DroppedMessage]) -> None:
        last = drops[-1]
        more = f" (+{len(drops) - 1} more)" if len(drops) > 1 else ""
        self.last_drop.setText(f"last drop: {last.reason.value} · {last.message.topic}{more}")

    def _render(self) -> None:
        stats = self.stats
        limit_m, limit_b = self._limit_messages, self._limit_bytes
        _gauge(
            self.depth_bar,
            stats.depth,
            limit_m,
            f"{stats.depth:,} / {limit_m:,} msgs" if limit_m else f"{stats.depth:,} msgs",
        )
        _gauge(
            self.bytes_bar,
            stats.bytes,
            limit_b,
            f"{format_bytes(stats.bytes)} / {format_bytes(limit_b)}"
            if limit_b
            else format_bytes(stats.bytes),
        )
        self.dropped.setText(f"{stats.dropped:,}")
        self.drained.setText(f"{stats.drained:,}")
        self.in_flight.setText(f"{stats.in_flight:,}")


def _gauge(bar: QProgressBar, value: int, limit: int | None, text: str) -> None:
    """Fill ``bar`` to ``value`` of ``limit`` (scaled to fit Qt's int range) and label it."""
    if limit is None:
        bar.setRange(0, max(1, value))
        bar.setFormat(f"{text} (unbounded)")
        bar.setValue(value)
        return
    scale = limit // 1_000_000 + 1
    bar.setRange(0, limit // scale)
    bar.setFormat(text)
    bar.setValue(min(value // scale, bar.maximum()))
