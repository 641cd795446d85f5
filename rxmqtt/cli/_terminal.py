"""Terminal output for the CLI: data on stdout, events and a live status line on stderr.

On a terminal the status line is redrawn in place (``\\r`` + erase-line) and data or event lines
scroll above it; when stderr is a pipe or a file every status update is a plain line instead, so
logs stay readable and tests can match them.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import TextIO

_ERASE = "\r\x1b[K"


def timestamp(clock: Callable[[], float] = time.time) -> str:
    """``HH:MM:SS.mmm`` in local time."""
    now = clock()
    return time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"


class Terminal:
    """Where the CLI writes. ``live`` redraws one status line in place (stderr is a TTY);
    ``quiet`` (the default; not ``-d``) silences events and status (data still goes to
    stdout)."""

    def __init__(self, out: TextIO, err: TextIO, *, live: bool, quiet: bool) -> None:
        self._out = out
        self._err = err
        self.live = live
        self.quiet = quiet
        self._status = ""
        self._drawn = False
        self._shares_screen = live and _isatty(out)

    def data(self, line: bytes) -> None:
        """One line of data (a received payload, as received) on stdout."""
        if self._drawn and self._shares_screen:
            self._err.write(_ERASE)
            self._err.flush()
            self._drawn = False
        binary = getattr(self._out, "buffer", None)
        if binary is not None:  # a real stream: the payload's bytes, as mosquitto_sub prints them
            self._out.flush()
            binary.write(line + b"\n")
            binary.flush()
        else:
            self._out.write(line.decode("utf-8", errors="backslashreplace") + "\n")
            self._out.flush()

    def event(self, state: str, text: str) -> None:
        """A timestamped event line on stderr: ``12:00:01.234  CONNECTED     connected to ...``."""
        if self.quiet:
            return
        prefix = _ERASE if self._drawn else ""
        self._drawn = False
        self._err.write(f"{prefix}{timestamp()}  {state:<13} {text}\n")
        self._err.flush()

    def status(self, text: str) -> None:
        """The status line: redrawn in place when live, otherwise printed as a ``progress`` event
        line."""
        if self.quiet:
            return
        self._status = text
        if not self.live:
            self._err.write(f"{timestamp()}  {'progress':<13} {text}\n")
            self._err.flush()
            return
        width = shutil.get_terminal_size((100, 20)).columns
        self._err.write(_ERASE + text[: max(width - 1, 10)])
        self._err.flush()
        self._drawn = True

    def finish(self) -> None:
        """Erase the status line (the summary follows as an ordinary line)."""
        if self._drawn:
            self._err.write(_ERASE)
            self._err.flush()
            self._drawn = False


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
