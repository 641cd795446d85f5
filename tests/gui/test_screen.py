"""gui_demo.screen's explanations: which library Qt's platform plugin lacks (from ``ldd`` on
the real plugin) and what Qt itself said; the choice needs no probe when there is no screen."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import PySide6
import pytest

from gui_demo.screen import (
    OFFSCREEN,
    Screen,
    choose_screen,
    explain_failure,
    missing_libraries,
)

XCB_PLUGIN = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"


@pytest.fixture
def stranded_plugin(tmp_path: Path) -> Path:
    """A copy of the real xcb plugin away from PySide6's Qt libraries: its ``$ORIGIN`` run path
    no longer finds ``libQt6XcbQpa.so.6``, a real missing library for ``ldd`` to report."""
    if not XCB_PLUGIN.is_file():
        pytest.skip(f"this PySide6 has no xcb platform plugin at {XCB_PLUGIN}")
    copy = tmp_path / "platforms" / "libqxcb.so"
    copy.parent.mkdir()
    shutil.copy2(XCB_PLUGIN, copy)
    return copy


def test_ldd_names_every_library_the_plugin_lacks(stranded_plugin: Path) -> None:
    assert "libQt6XcbQpa.so.6" in missing_libraries(stranded_plugin)
    assert missing_libraries(XCB_PLUGIN) == [], "./run installed what the real one needs"


def test_a_plugin_that_cannot_load_is_explained_by_its_missing_libraries(
    stranded_plugin: Path,
) -> None:
    qt_said = (  # what Qt prints with QT_DEBUG_PLUGINS=1 when dlopen fails
        f'qt.core.library: "{stranded_plugin}" cannot load: Cannot load library '
        f"{stranded_plugin}: libQt6XcbQpa.so.6: cannot open shared object file: "
        "No such file or directory\n"
        'qt.qpa.plugin: Could not load the Qt platform plugin "xcb" in "" even though it was '
        "found.\n"
    )
    reason = explain_failure(qt_said, {"DISPLAY": ":0"})
    assert reason.startswith("Qt's xcb platform plugin cannot load: missing ")
    named = reason.removeprefix("Qt's xcb platform plugin cannot load: missing ").split(" (")[0]
    assert named.split(", ") == missing_libraries(stranded_plugin), "all of them, from ldd"
    assert "libQt6XcbQpa.so.6" in named
    assert "./run installs" in reason


def test_without_a_library_problem_qt_s_own_complaint_is_the_reason() -> None:
    qt_said = (
        "qt.qpa.xcb: could not connect to display :731\n"
        'qt.qpa.plugin: Could not load the Qt platform plugin "xcb" in "" even though it was '
        "found.\n"
    )
    reason = explain_failure(qt_said, {"DISPLAY": ":731"})
    assert reason.startswith("Qt could not start on display :731: xcb: could not connect")
    assert explain_failure("", {}) == "Qt could not start on display ?: no reason given"


def test_no_screen_or_an_explicit_offscreen_needs_no_probe() -> None:
    bare = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    bare.pop("QT_QPA_PLATFORM", None)
    assert choose_screen(bare) == Screen(
        OFFSCREEN, "no screen (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    )
    assert choose_screen({**bare, "QT_QPA_PLATFORM": "offscreen"}) == Screen(OFFSCREEN)
    assert choose_screen({**bare, "QT_QPA_PLATFORM": "offscreen"}).offscreen
