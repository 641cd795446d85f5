"""The publish panel: topic, payload template, QoS, retain; once, a burst of N, or a steady rate.

``publish()`` never raises for connection trouble: while offline the messages wait in the queue
and each returned observable ends acknowledged or with why not. The panel counts those outcomes
(publishing is eager; subscribing only observes) and repaints its counters on a timer, not per
message, so a steady 5,000 msg/s costs the UI nothing but the publishing itself.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from rxmqtt import Connection, PublishResult

TICK_BUDGET = 0.008
"""Seconds of publishing per timer tick at most: bursts and steady rates are spread over ticks
so that publishing never keeps the event loop (the UI) busy for long. A rate the loop cannot
sustain is shown as the achieved rate instead of freezing the window."""
MAX_CATCH_UP = 0.5
"""A steady publisher that fell behind (late ticks, a busy loop) owes at most this many seconds
of messages; older debt is forgiven rather than burst out later."""


class PublishPanel(QGroupBox):
    """Publish by hand or at a rate; counts published, acknowledged and failed messages."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Publish", parent)
        self.connection: Connection | None = None
        self.published = 0
        self.acknowledged = 0
        self.failed = 0
        self._seq = 0
        self._steady_started = 0.0
        self._steady_sent = 0
        self._steady_skipped = 0
        self._last_failure = ""

        self.topic = QLineEdit("plant/line1/temperature")
        self.payload = QLineEdit('{"seq": {n}, "at": "{t}"}')
        self.payload.setToolTip("{n}: sequence number, {t}: wall-clock time")
        self.qos = QComboBox()
        self.qos.addItems(["0 · at most once", "1 · at least once", "2 · exactly once"])
        self.qos.setCurrentIndex(1)
        self.retain = QCheckBox("retain")
        self.once_button = QPushButton("Publish once")
        self.once_button.setProperty("kind", "primary")
        self.burst_size = QSpinBox()
        self.burst_size.setRange(1, 100_000)
        self.burst_size.setValue(100)
        self.burst_size.setGroupSeparatorShown(True)
        self.burst_button = QPushButton("Burst")
        self.rate = QSpinBox()
        self.rate.setRange(1, 20_000)
        self.rate.setValue(20)
        self.rate.setSuffix(" msg/s")
        self.rate.setGroupSeparatorShown(True)
        self.steady_button = QPushButton("Steady ▶")
        self.steady_button.setCheckable(True)
        self.counters = QLabel()
        self.counters.setProperty("role", "value")
        self.error = QLabel()
        self.error.setStyleSheet("color: #c62828;")
        self.error.setWordWrap(True)

        self.once_button.clicked.connect(lambda: self.publish_many(1))
        self.burst_button.clicked.connect(lambda: self.burst(self.burst_size.value()))
        self.steady_button.toggled.connect(self._steady_toggled)
        self._backlog = 0
        self._pump_timer = QTimer(self)
        self._pump_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._pump_timer.timeout.connect(self._pump)
        self._repaint = QTimer(self)
        self._repaint.setInterval(150)
        self._repaint.timeout.connect(self._show_counters)
        self._repaint.start()

        form = QFormLayout()
        form.setVerticalSpacing(5)
        form.addRow("Topic", self.topic)
        form.addRow("Payload", self.payload)
        options = QHBoxLayout()
        options.addWidget(self.qos, 1)
        options.addWidget(self.retain)
        form.addRow("QoS", options)
        buttons = QGridLayout()
        buttons.setHorizontalSpacing(6)
        buttons.addWidget(self.once_button, 0, 0)
        buttons.addWidget(self.burst_size, 0, 1)
        buttons.addWidget(self.burst_button, 0, 2)
        buttons.addWidget(self.rate, 1, 1)
        buttons.addWidget(self.steady_button, 1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.counters)
        layout.addWidget(self.error)
        layout.addStretch(1)
        self.set_connection(None)

    def set_connection(self, connection: Connection | None) -> None:
        """Publish on ``connection`` from now on (``None``: nothing to publish on)."""
        self.connection = connection
        for button in (self.once_button, self.burst_button):
            button.setEnabled(connection is not None)
        self._show_counters()

    # ------------------------------------------------------------------ publishing

    def publish_many(self, count: int, deadline: float | None = None) -> int:
        """Publish ``count`` messages now with the form's settings, stopping early at
        ``deadline`` (``time.perf_counter``); returns how many went.

        Bad input (an invalid topic, a payload over the broker's limit) raises at the call site
        in rxmqtt; it is shown under the buttons and stops a steady run and a burst.
        """
        connection = self.connection
        if connection is None:
            return 0
        topic = self.topic.text().strip()
        template = self.payload.text()
        qos = self.qos.currentIndex()
        retain = self.retain.isChecked()
        stamp = "{t}" in template
        sent = 0
        try:
            for index in range(count):
                if deadline is not None and index % 16 == 15 and time.perf_counter() > deadline:
                    break
                self._seq += 1
                payload = template.replace("{n}", str(self._seq))
                if stamp:
                    payload = payload.replace("{t}", _clock())
                connection.publish(topic, payload, qos, retain).subscribe(
                    self._acknowledged, self._failed
                )
                sent += 1
        except (TypeError, ValueError) as exc:
            self.error.setText(str(exc))
            self._backlog = 0
            self.steady_button.setChecked(False)
        else:
            self.error.clear()
        self.published += sent
        return sent

    def burst(self, count: int) -> None:
        """Publish ``count`` messages as fast as the loop allows without freezing the UI: what
        does not fit in this tick's budget goes out on the next ticks."""
        self._backlog += count
        self._pump()

    def start_steady(self, rate: int | None = None) -> None:
        """Publish ``rate`` (default: the spin box's) messages per second until stopped."""
        if rate is not None:
            self.rate.setValue(rate)
        self.steady_button.setChecked(True)

    def stop_steady(self) -> None:
        self.steady_button.setChecked(False)

    @property
    def achieved_rate(self) -> float:
        """Messages per second the steady publisher actually sent since it started."""
        elapsed = time.monotonic() - self._steady_started
        return self._steady_sent / elapsed if elapsed > 0 else 0.0

    def _steady_toggled(self, on: bool) -> None:
        self.steady_button.setText("Steady ■ stop" if on else "Steady ▶")
        self._steady_started = time.monotonic()
        self._steady_sent = self._steady_skipped = 0
        self._pump()

    def _pump(self) -> None:
        """One tick: the burst backlog first, then what the steady rate owes, within budget."""
        deadline = time.perf_counter() + TICK_BUDGET
        steady = self.steady_button.isChecked()
        if self.connection is None:
            self._backlog = 0
            self._steady_started = time.monotonic()
            self._steady_sent = self._steady_skipped = 0
        if self._backlog:
            self._backlog -= self.publish_many(self._backlog, deadline)
        if steady and self.connection is not None:
            rate = self.rate.value()
            elapsed = time.monotonic() - self._steady_started
            due = int(rate * elapsed) - self._steady_sent - self._steady_skipped
            behind = due - int(rate * MAX_CATCH_UP)
            if behind > 0:  # forgo what the loop had no time for, rather than burst it
                self._steady_skipped += behind
                due -= behind
            if due > 0:
                self._steady_sent += self.publish_many(due, deadline)
        if self._backlog or steady:
            interval = max(5, min(100, 1000 // self.rate.value())) if steady else 0
            if not self._pump_timer.isActive() or self._pump_timer.interval() != interval:
                self._pump_timer.start(interval)
        else:
            self._pump_timer.stop()

    def _acknowledged(self, result: PublishResult) -> None:
        self.acknowledged += 1

    def _failed(self, error: Exception) -> None:
        self.failed += 1
        self._last_failure = f"last failure: {error}"

    def _show_counters(self) -> None:
        steady = ""
        if self.steady_button.isChecked():
            steady = f"\nsteady: {self.achieved_rate:,.0f} of {self.rate.value():,} msg/s"
        self.counters.setText(
            f"published {self.published:,} · acknowledged {self.acknowledged:,}"
            f" · failed {self.failed:,}{steady}"
        )
        if self._last_failure:
            self.error.setText(self._last_failure)
            self._last_failure = ""


def _clock() -> str:
    now = time.time()
    return time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"
