"""A live plot drawn with QPainter: message rates and queue depth over the last minute, with the
periods the connection was not CONNECTED shaded.

No plotting dependency: the widget keeps a bounded ring of samples and repaints a few times per
second, which costs a few hundred line segments, whatever the message rate.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from .style import BORDER, MUTED, OFFLINE_SHADE, QUEUE_COLOUR, RX_COLOUR, TX_COLOUR

XMap = Callable[[float], float]
"""Time (s) -> x pixel."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One point of the plot: when, received and published per second, queue depth, online."""

    t: float
    rx_rate: float
    tx_rate: float
    depth: int
    online: bool


YMap = Callable[[Sample], float]
"""Sample -> y pixel of one series."""


def nice_ceiling(value: float, divisions: int = 4) -> float:
    """The smallest axis maximum >= ``value`` whose ``divisions`` ticks are round numbers:
    ``divisions`` times 1, 2 or 5 times a power of ten (never below one per division, so
    counts are never labelled with fractions)."""
    step = max(value, 1e-9) / divisions
    power = 10 ** math.floor(math.log10(step)) if step >= 1 else 1
    for factor in (1, 2, 5, 10):
        if step <= factor * power:
            return float(divisions * factor * power)
    return float(divisions * 10 * power)  # pragma: no cover - the loop always returns


class LivePlot(QWidget):
    """Rates (left axis) and queue depth (right axis) over a sliding window of ``span`` s."""

    def __init__(self, span: float = 60.0, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.span = span
        self.samples: deque[Sample] = deque(maxlen=2000)
        self.setMinimumSize(420, 220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def add_sample(self, sample: Sample) -> None:
        """Append a sample, forget those older than the window, and repaint."""
        self.samples.append(sample)
        while self.samples and sample.t - self.samples[0].t > self.span + 5:
            self.samples.popleft()
        self.update()

    def clear(self) -> None:
        self.samples.clear()
        self.update()

    # ------------------------------------------------------------------ painting

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        small = QFont(self.font())
        small.setPointSize(8)
        painter.setFont(small)
        area = QRectF(self.rect()).adjusted(52, 28, -56, -24)
        painter.fillRect(self.rect(), QColor("#ffffff"))
        if area.width() <= 10 or area.height() <= 10:
            painter.end()
            return
        now = self.samples[-1].t if self.samples else 0.0
        first = self.samples[0].t if self.samples else 0.0
        shown = min(self.span, max(MIN_SHOWN, now - first))  # fill the width from the start
        t0 = now - shown
        rate_max = nice_ceiling(max((max(s.rx_rate, s.tx_rate) for s in self.samples), default=1))
        depth_max = nice_ceiling(max((s.depth for s in self.samples), default=1))

        def x_of(t: float) -> float:
            return area.left() + (t - t0) / shown * area.width()

        def y_of(value: float, top: float) -> float:
            return area.bottom() - min(value, top) / top * area.height()

        self._shade_offline(painter, area, x_of, t0)
        self._grid(painter, area, shown, rate_max, depth_max)
        visible = [s for s in self.samples if s.t >= t0 - 1]
        if visible:
            self._area(painter, area, visible, x_of, lambda s: y_of(s.depth, depth_max))
            self._line(painter, visible, x_of, lambda s: y_of(s.tx_rate, rate_max), TX_COLOUR, 1.6)
            self._line(painter, visible, x_of, lambda s: y_of(s.rx_rate, rate_max), RX_COLOUR, 2.2)
        self._legend(painter, area)
        painter.end()

    def _shade_offline(self, painter: QPainter, area: QRectF, x_of: XMap, t0: float) -> None:
        start: float | None = None
        samples = list(self.samples)
        for index, sample in enumerate(samples):
            if not sample.online and start is None:
                start = samples[index - 1].t if index else sample.t
            if sample.online and start is not None:
                self._band(painter, area, x_of(max(start, t0)), x_of(sample.t))
                start = None
        if start is not None and samples:
            self._band(painter, area, x_of(max(start, t0)), x_of(samples[-1].t))

    def _band(self, painter: QPainter, area: QRectF, left: float, right: float) -> None:
        left, right = max(left, area.left()), min(right, area.right())
        if right <= left:
            return
        painter.fillRect(QRectF(left, area.top(), right - left, area.height()), OFFLINE_SHADE)
        painter.setPen(QColor("#c62828"))
        if right - left > 44:
            painter.drawText(QRectF(left + 4, area.top() + 2, right - left, 14), "offline")

    def _grid(
        self, painter: QPainter, area: QRectF, shown: float, rate_max: float, depth_max: float
    ) -> None:
        step = next((s for s in _TIME_STEPS if shown / s <= 7), _TIME_STEPS[-1])
        ticks = range(0, int(shown) + 1, step)
        painter.setPen(QPen(QColor("#eceff1"), 1))
        for i in range(1, 5):
            y = area.top() + area.height() * i / 4
            painter.drawLine(QPointF(area.left(), y), QPointF(area.right(), y))
        for seconds in ticks[1:]:
            x = area.right() - seconds / shown * area.width()
            painter.drawLine(QPointF(x, area.top()), QPointF(x, area.bottom()))
        painter.setPen(QPen(QColor(BORDER), 1))
        painter.drawRect(area)
        painter.setPen(QColor(MUTED))
        for i in range(5):
            y = area.bottom() - area.height() * i / 4
            rate_text = _short(rate_max * i / 4)
            painter.drawText(QRectF(0, y - 8, area.left() - 6, 16), _RIGHT, rate_text)
            depth_text = _short(depth_max * i / 4)
            painter.drawText(QRectF(area.right() + 6, y - 8, 50, 16), _LEFT, depth_text)
        for seconds in ticks:
            x = area.right() - seconds / shown * area.width()
            label = "now" if seconds == 0 else f"-{seconds}s"
            painter.drawText(QRectF(x - 30, area.bottom() + 4, 60, 16), _CENTER, label)
        painter.drawText(QRectF(0, area.top() - 24, 120, 14), _LEFT, "  msg/s")
        painter.drawText(QRectF(area.right() - 60, area.top() - 24, 110, 14), _RIGHT, "queued  ")

    def _line(
        self,
        painter: QPainter,
        samples: list[Sample],
        x_of: XMap,
        y_of: YMap,
        colour: str,
        width: float,
    ) -> None:
        path = QPainterPath(QPointF(x_of(samples[0].t), y_of(samples[0])))
        for sample in samples[1:]:
            path.lineTo(QPointF(x_of(sample.t), y_of(sample)))
        painter.setPen(QPen(QColor(colour), width))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(path)

    def _area(
        self, painter: QPainter, area: QRectF, samples: list[Sample], x_of: XMap, y_of: YMap
    ) -> None:
        path = QPainterPath(QPointF(x_of(samples[0].t), area.bottom()))
        for sample in samples:
            path.lineTo(QPointF(x_of(sample.t), y_of(sample)))
        path.lineTo(QPointF(x_of(samples[-1].t), area.bottom()))
        path.closeSubpath()
        fill = QColor(QUEUE_COLOUR)
        fill.setAlpha(70)
        painter.setPen(QPen(QColor(QUEUE_COLOUR), 1.2))
        painter.setBrush(fill)
        painter.drawPath(path)

    def _legend(self, painter: QPainter, area: QRectF) -> None:
        x = area.left() + 70
        for text, colour in (
            ("received/s", RX_COLOUR),
            ("published/s", TX_COLOUR),
            ("queue depth", QUEUE_COLOUR),
            ("offline", "#e57373"),
        ):
            painter.fillRect(QRectF(x, area.top() - 19, 12, 8), QColor(colour))
            painter.setPen(QColor(MUTED))
            painter.drawText(QRectF(x + 16, area.top() - 24, 90, 16), _LEFT, text)
            x += 104


MIN_SHOWN = 10.0
"""The shortest time axis, in seconds (until that much history exists)."""
_TIME_STEPS = (1, 2, 5, 10, 15, 30, 60)
_LEFT = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_CENTER = int(Qt.AlignmentFlag.AlignCenter)


def _short(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}" if value >= 10 or value == 0 else f"{value:.1f}"
