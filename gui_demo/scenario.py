"""The scripted outage behind ``--screenshot``: publish, crash the broker, queue, restore, drain.

It drives the window through the same controls a person would click, paced as fractions of
``run_for`` so a short and a long run tell the same story, and saves a PNG of the window at the
end (works headless with ``QT_QPA_PLATFORM=offscreen``).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from PySide6.QtCore import QTimer

from .window import ControlRoom

MIN_RUN_FOR = 6.0
"""Shorter runs cannot show a crash, a backoff, a restart and a drain."""


async def run_scenario(window: ControlRoom, run_for: float, screenshot: Path | None) -> None:
    """Play the outage on ``window`` for ``run_for`` seconds, then save ``screenshot``."""
    run_for = max(run_for, MIN_RUN_FOR)
    started = time.monotonic()

    async def at(fraction: float) -> None:
        await asyncio.sleep(max(0.0, started + fraction * run_for - time.monotonic()))

    note = window.log.note
    note("scenario: subscribe plant/#, publish 25 msg/s (QoS 1) + a second sensor")
    window.subscriptions.add_filter("plant/#", qos=1)
    window.publisher.start_steady(25)
    second = QTimer(window)
    second.timeout.connect(_PressureSensor(window))
    second.start(200)
    window.policies.maximum.setValue(2.0)  # applied live: shows in the log and speeds recovery

    lab = window.lab
    if lab is not None:
        window.controls.auto_restart.setValue(0.0)
        await at(0.25)
        note("scenario: crash the broker; publishes queue while it is down")
        window.controls.crash_broker()
        await at(0.55)
        note("scenario: bring the broker back; the queue drains on reconnect")
        window.controls.start_broker()
    await at(1.0)
    second.stop()
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        if not window.grab().save(str(screenshot), "PNG"):
            raise OSError(f"could not write the screenshot to {screenshot}")
        note(f"scenario: screenshot saved to {screenshot}")


class _PressureSensor:
    """A second, slower sensor (5 msg/s), so the per-topic rates have more than one row."""

    def __init__(self, window: ControlRoom) -> None:
        self.window = window
        self.seq = 0

    def __call__(self) -> None:
        connection = self.window.connection
        if connection is None:
            return
        self.seq += 1
        value = 4.0 + (self.seq % 17) / 10
        connection.publish("plant/line2/pressure", f'{{"bar": {value:.1f}}}', qos=1)
