"""Where the control room can show itself: a window on the desktop's display, or, when there is
no display or Qt cannot start its platform plugin on it, the scripted scenario offscreen.

Qt aborts the whole process (``qFatal``) when its platform plugin cannot load, so the choice is
made first, by starting a ``QGuiApplication`` in a short child process. When that fails, the
reason names what is missing: the shared libraries ``ldd`` cannot find for the plugin Qt tried
(``./run`` installs them), or Qt's own complaint (no X server on ``DISPLAY``, for example).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

OFFSCREEN = "offscreen"

_PROBE = """
from PySide6.QtGui import QGuiApplication
app = QGuiApplication(["rxmqtt-demo-probe"])
print("platform:", app.platformName(), flush=True)
"""

_CANNOT_LOAD = re.compile(
    r"Cannot load library (?P<plugin>\S+?):? \(?(?P<library>[^\s:()]+\.so[.\w]*): "
    r"cannot open shared object file"
)


@dataclass(frozen=True)
class Screen:
    """The Qt platform to use and, when it is the offscreen fallback, why."""

    platform: str
    """Qt's platform plugin name: ``xcb``, ``wayland``, ... or ``offscreen``."""
    fallback_reason: str | None = None
    """Why there is no window (``None`` when ``platform`` is what was asked for)."""

    @property
    def offscreen(self) -> bool:
        return self.platform == OFFSCREEN


def choose_screen(environ: dict[str, str] | None = None, *, timeout: float = 30.0) -> Screen:
    """The platform Qt can start here: the one ``QT_QPA_PLATFORM`` names or Qt's default for
    the display, if a probe process can start it; otherwise ``offscreen``, with the reason."""
    env = dict(os.environ if environ is None else environ)
    asked = env.get("QT_QPA_PLATFORM", "")
    if asked.split(":")[0] == OFFSCREEN:
        return Screen(OFFSCREEN)
    if not asked and not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return Screen(OFFSCREEN, "no screen (neither DISPLAY nor WAYLAND_DISPLAY is set)")
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE],
            env={**env, "QT_DEBUG_PLUGINS": "1"},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Screen(OFFSCREEN, f"Qt did not start on this display within {timeout:g} s")
    for line in probe.stdout.splitlines():
        if probe.returncode == 0 and line.startswith("platform: "):
            return Screen(line.removeprefix("platform: ").strip())
    return Screen(OFFSCREEN, explain_failure(probe.stderr, env))


def explain_failure(qt_output: str, environ: dict[str, str]) -> str:
    """Why Qt could not start its platform plugin, from its output (with ``QT_DEBUG_PLUGINS``):
    every library the plugin lacks, else Qt's own last words."""
    where = environ.get("WAYLAND_DISPLAY") or environ.get("DISPLAY") or "?"
    for match in _CANNOT_LOAD.finditer(qt_output):
        plugin = Path(match["plugin"])
        missing = missing_libraries(plugin) or [match["library"]]
        return (
            f"Qt's {plugin_name(plugin)} platform plugin cannot load: missing "
            f"{', '.join(missing)} (./run installs what it needs; on Debian: apt-get install "
            f"the package that ships each, e.g. found with `apt-file search`)"
        )
    complaints = [
        line.removeprefix("qt.qpa.").strip()
        for line in qt_output.splitlines()
        if line.startswith(("qt.qpa.xcb:", "qt.qpa.plugin:", "qt.qpa.wayland:"))
    ]
    detail = "; ".join(complaints[-2:]) if complaints else "no reason given"
    return f"Qt could not start on display {where}: {detail}"


def missing_libraries(plugin: Path) -> list[str]:
    """The sonames ``ldd`` cannot resolve for ``plugin`` (empty if ``ldd`` is unavailable)."""
    ldd = shutil.which("ldd")
    if ldd is None or not plugin.is_file():
        return []
    listing = subprocess.run(
        [ldd, str(plugin)], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    found = [line.split()[0] for line in listing.splitlines() if "=> not found" in line]
    return sorted(set(found))


def plugin_name(plugin: Path) -> str:
    """``libqxcb.so`` -> ``xcb``."""
    name = plugin.name.removesuffix(".so")
    return name.removeprefix("libq") if name.startswith("libq") else name
