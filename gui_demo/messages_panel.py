"""Subscriptions, the message table and per-topic rates.

Each filter is one ``conn.messages(filter, qos)`` stream, batched for display (at most ten updates
a second), so a flood costs one list append per message and one table refresh per batch. The
table keeps a bounded number of rows; the rates count every message. Filters outlive a
connection: a new connection re-subscribes them all.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from reactivex import abc

from rxmqtt import Connection, Message
from rxmqtt.qt import Binding, bind, throttle_for_display
from rxmqtt.topics import validate_filter

from .style import mono_font

DISPLAY_INTERVAL = 0.1
MAX_ROWS = 300
RATE_ROWS = 12
_Index = QModelIndex | QPersistentModelIndex


class MessageModel(QAbstractTableModel):
    """The newest ``max_rows`` messages, newest first."""

    COLUMNS = ("Time", "Topic", "QoS", "Payload")

    def __init__(self, max_rows: int = MAX_ROWS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.rows: deque[tuple[str, str, str, str]] = deque(maxlen=max_rows)

    def add(self, messages: list[Message]) -> None:
        """Prepend a batch (one model reset per batch, whatever its size)."""
        stamp = time.strftime("%H:%M:%S")
        self.beginResetModel()
        for message in messages[-(self.rows.maxlen or len(messages)) :]:
            payload = message.payload[:160].decode("utf-8", "replace")
            retain = " R" if message.retain else ""
            self.rows.appendleft((stamp, message.topic, f"{message.qos}{retain}", payload))
        self.endResetModel()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.COLUMNS)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and index.isValid():
            return self.rows[index.row()][index.column()]
        return None

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.COLUMNS[section]
        return None


class MessageTable(QGroupBox):
    """The message table (bounded rows)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Messages", parent)
        self.model = MessageModel(parent=self)
        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.setFont(mono_font(9))
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(20)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setAlternatingRowColors(True)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        header.resizeSection(1, 220)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view)


class SubscriptionsPanel(QGroupBox):
    """Add and remove filters; per-topic message rates. Feeds :class:`MessageTable`."""

    def __init__(self, table: MessageTable, parent: QWidget | None = None) -> None:
        super().__init__("Subscriptions", parent)
        self.table = table
        self.filters: dict[str, int] = {}
        self.received = 0
        """Messages received on every filter since start (the plot's rate source)."""
        self._connection: Connection | None = None
        self._scope: QObject | None = None
        self._scheduler: abc.SchedulerBase | None = None
        self._bindings: dict[str, Binding[list[Message]]] = {}
        self._window_counts: Counter[str] = Counter()
        self._totals: Counter[str] = Counter()
        self._rates: dict[str, float] = {}
        self._last_rate_at = time.monotonic()

        self.filter_edit = QLineEdit("plant/#")
        self.filter_qos = QComboBox()
        self.filter_qos.addItems(["QoS 0", "QoS 1", "QoS 2"])
        self.filter_qos.setCurrentIndex(1)
        self.add_button = QPushButton("Subscribe")
        self.add_button.setProperty("kind", "primary")
        self.remove_button = QPushButton("Unsubscribe")
        self.list = QListWidget()
        self.list.setMaximumHeight(64)
        self.error = QLabel()
        self.error.setStyleSheet("color: #c62828;")
        self.rates = QTableWidget(0, 3)
        self.rates.setHorizontalHeaderLabels(["Topic", "msg/s", "total"])
        self.rates.verticalHeader().setVisible(False)
        self.rates.verticalHeader().setDefaultSectionSize(20)
        self.rates.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.rates.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)

        self.add_button.clicked.connect(self._add_clicked)
        self.filter_edit.returnPressed.connect(self._add_clicked)
        self.remove_button.clicked.connect(self._remove_clicked)
        self._rate_timer = QTimer(self)
        self._rate_timer.setInterval(1000)
        self._rate_timer.timeout.connect(self._update_rates)
        self._rate_timer.start()

        row = QHBoxLayout()
        row.addWidget(self.filter_edit, 1)
        row.addWidget(self.filter_qos)
        row.addWidget(self.add_button)
        row2 = QHBoxLayout()
        row2.addWidget(self.list, 1)
        row2.addWidget(self.remove_button, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addLayout(row2)
        layout.addWidget(self.error)
        layout.addWidget(self.rates, 1)

    # ------------------------------------------------------------------ connection

    def bind_connection(
        self, connection: Connection, scope: QObject, scheduler: abc.SchedulerBase
    ) -> None:
        """Subscribe every filter on ``connection`` until ``scope`` is destroyed."""
        self._connection, self._scope, self._scheduler = connection, scope, scheduler
        self._bindings.clear()
        scope.destroyed.connect(lambda *_: self._forget_connection(scope))
        for topic_filter in self.filters:
            self._subscribe(topic_filter)

    def _forget_connection(self, scope: QObject) -> None:
        if self._scope is scope:  # not a newer connection's scope
            self._connection = self._scope = None
            self._bindings.clear()

    # ------------------------------------------------------------------ filters

    def add_filter(self, topic_filter: str, qos: int = 1) -> None:
        """Subscribe to ``topic_filter`` (now, and on every later connection)."""
        topic_filter = validate_filter(topic_filter)
        if topic_filter in self.filters:
            return
        self.filters[topic_filter] = qos
        self.list.addItem(f"{topic_filter}   (QoS {qos})")
        self._subscribe(topic_filter)

    def remove_filter(self, topic_filter: str) -> None:
        """Unsubscribe (the last local subscriber of a filter sends UNSUBSCRIBE)."""
        if self.filters.pop(topic_filter, None) is None:
            return
        binding = self._bindings.pop(topic_filter, None)
        if binding is not None:
            binding.dispose()
        for item in self.list.findItems(f"{topic_filter} ", Qt.MatchFlag.MatchStartsWith):
            self.list.takeItem(self.list.row(item))

    def _subscribe(self, topic_filter: str) -> None:
        connection, scope = self._connection, self._scope
        if connection is None or scope is None:
            return
        stream = throttle_for_display(
            connection.messages(topic_filter, self.filters[topic_filter]),
            DISPLAY_INTERVAL,
            scheduler=self._scheduler,
        )
        self._bindings[topic_filter] = bind(
            stream,
            self._on_batch,
            owner=scope,
            on_error=lambda error: self.error.setText(f"{topic_filter}: {error}"),
        )

    def _add_clicked(self) -> None:
        try:
            self.add_filter(self.filter_edit.text().strip(), self.filter_qos.currentIndex())
        except ValueError as exc:
            self.error.setText(str(exc))
        else:
            self.error.clear()

    def _remove_clicked(self) -> None:
        selected = self.list.selectedItems()
        if not selected:
            self.error.setText("select a filter to unsubscribe")
        for item in selected:
            self.remove_filter(item.text().split()[0])

    # ------------------------------------------------------------------ messages

    def _on_batch(self, messages: list[Message]) -> None:
        self.received += len(messages)
        self._window_counts.update(message.topic for message in messages)
        self.table.model.add(messages)

    def _update_rates(self) -> None:
        now = time.monotonic()
        elapsed = max(1e-3, now - self._last_rate_at)
        self._last_rate_at = now
        for topic in set(self._rates) | set(self._window_counts):
            fresh = self._window_counts.get(topic, 0) / elapsed
            self._rates[topic] = 0.5 * self._rates.get(topic, fresh) + 0.5 * fresh
        self._totals.update(self._window_counts)
        self._window_counts.clear()
        top = sorted(self._rates, key=lambda t: (-self._rates[t], -self._totals[t], t))
        top = top[:RATE_ROWS]
        self.rates.setRowCount(len(top))
        for row, topic in enumerate(top):
            for column, text in enumerate(
                (topic, f"{self._rates[topic]:,.1f}", f"{self._totals[topic]:,}")
            ):
                item = QTableWidgetItem(text)
                if column:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.rates.setItem(row, column, item)

    def topic_rate(self, topic: str) -> float:
        """The smoothed messages per second last computed for ``topic``."""
        return self._rates.get(topic, 0.0)
