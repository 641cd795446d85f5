"""``python -m gui_demo --screenshot PATH --run-for SECONDS`` as a user runs it: headless
(offscreen), bounded in time, and it leaves a real PNG of the whole window behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

pytestmark = pytest.mark.broker

REPO = Path(__file__).resolve().parents[2]


def test_screenshot_run_saves_a_png_of_the_window_and_exits_0(
    tmp_path: Path, qapp: QApplication
) -> None:
    shot = tmp_path / "control-room.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-m", "gui_demo", "--screenshot", str(shot), "--run-for", "6"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 50_000, "a rendered window, not an empty image"
    image = QImage(str(shot))
    assert image.width() >= 1200
    assert image.height() >= 800
    corners = {image.pixel(x, y) for x in (5, image.width() // 2) for y in (5, image.height() // 2)}
    assert len(corners) > 1, "not a single flat colour"


def test_a_bad_broker_url_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gui_demo", "--broker", "http://nowhere"],
        cwd=REPO,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "--broker: url: unknown scheme 'http'" in done.stderr
