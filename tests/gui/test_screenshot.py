"""``python -m gui_demo`` as a user runs it: on a real X server (Xvfb) with Qt's xcb platform,
offscreen, and without a usable screen (it says why and falls back to the offscreen scenario).
Each run is bounded in time and leaves a real PNG of the whole window behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

pytestmark = pytest.mark.broker

REPO = Path(__file__).resolve().parents[2]
SCREEN_VARIABLES = ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY")


def demo(
    args: list[str], env: dict[str, str], *, cwd: Path = REPO, wrapper: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the demo (optionally under ``wrapper``, e.g. xvfb-run) in its own process group, so
    that a timeout kills everything it started (Xvfb included)."""
    command = [*(wrapper or []), sys.executable, "-m", "gui_demo", *args]
    with subprocess.Popen(
        command,
        cwd=cwd,
        env={**env, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            pytest.fail(f"the demo did not end within 90 s: {stderr[-2000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def without_a_screen() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in SCREEN_VARIABLES}


def assert_rendered(shot: Path) -> None:
    """A PNG of the whole window (at least 1200 x 800) with real content, not a flat or empty
    image: many distinct colours over a grid of samples."""
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 50_000, "a rendered window, not an empty image"
    image = QImage(str(shot))
    assert image.width() >= 1200
    assert image.height() >= 800
    colours = {
        image.pixel(x, y) for x in range(0, image.width(), 40) for y in range(0, image.height(), 40)
    }
    assert len(colours) > 20, f"only {len(colours)} distinct colours: blank"


def test_screenshot_run_saves_a_png_of_the_window_and_exits_0(
    tmp_path: Path, qapp: QApplication
) -> None:
    shot = tmp_path / "control-room.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = demo(["--screenshot", str(shot), "--run-for", "6"], env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "control room on Qt's offscreen platform" in done.stderr
    assert_rendered(shot)


def test_under_a_real_x_server_the_control_room_renders_with_xcb(
    tmp_path: Path, qapp: QApplication
) -> None:
    xvfb_run = shutil.which("xvfb-run")
    if xvfb_run is None:
        message = "xvfb-run is not installed (./run tests installs Debian's xvfb)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    shot = tmp_path / "control-room-xcb.png"
    done = demo(
        ["--screenshot", str(shot), "--run-for", "6"],
        without_a_screen(),  # Qt picks its platform from the DISPLAY xvfb-run provides
        wrapper=[xvfb_run, "-a", "-s", "-screen 0 1920x1080x24"],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "control room on Qt's xcb platform" in done.stderr, done.stderr[-3000:]
    assert "offscreen" not in done.stderr, "no fallback"
    assert_rendered(shot)


def free_display() -> str:
    """An X display number nobody serves (no socket, no lock file)."""
    for number in range(731, 831):
        if (
            not Path(f"/tmp/.X11-unix/X{number}").exists()
            and not Path(f"/tmp/.X{number}-lock").exists()
        ):
            return f":{number}"
    pytest.fail("no free X display number between 731 and 830")


def test_a_display_qt_cannot_use_falls_back_to_the_offscreen_scenario_and_says_why(
    tmp_path: Path, qapp: QApplication
) -> None:
    display = free_display()
    done = demo(["--run-for", "6"], {**without_a_screen(), "DISPLAY": display}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Qt could not start on display {display}" in done.stderr, done.stderr[-3000:]
    assert "playing the scripted scenario offscreen for 6 s -> rxmqtt-demo.png" in done.stderr
    assert "control room on Qt's offscreen platform" in done.stderr
    assert_rendered(tmp_path / "rxmqtt-demo.png")


def test_without_any_screen_the_scenario_plays_offscreen_and_says_so(
    tmp_path: Path, qapp: QApplication
) -> None:
    shot = tmp_path / "headless.png"
    done = demo(["--screenshot", str(shot), "--run-for", "6"], without_a_screen())
    assert done.returncode == 0, done.stderr[-3000:]
    assert "no screen (neither DISPLAY nor WAYLAND_DISPLAY is set)" in done.stderr
    assert_rendered(shot)


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
