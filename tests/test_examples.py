"""Every example runs briefly against its embedded Mosquitto, exits 0 by itself, and prints the
line that shows it did its job. The examples run as subprocesses, all at once (each has its own
broker on a free port), so the module costs about as long as the slowest one."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 45.0
"""Upper bound for one example run (they take a few seconds)."""

HAS_QT = all(importlib.util.find_spec(name) for name in ("PySide6", "qasync"))


@dataclass(frozen=True)
class Example:
    module: str
    args: tuple[str, ...]
    expected: tuple[str, ...]
    """Substrings that must each appear in some line of stdout."""
    needs_qt: bool = False


EXAMPLES = {
    example.module: example
    for example in (
        Example(
            "k8s_service",
            ("--run-for", "2"),
            (
                "probe | /readyz -> 200 ready: CONNECTED",
                "probe | /readyz -> 503 not ready: RECONNECTING (last disconnect: network: 0x80",
                "probe | /livez -> 200 live: RECONNECTING",
                "done; final state CLOSED",
            ),
        ),
        Example(
            "headless_gateway",
            ("--run-for", "2.5", "--outage", "0.5"),
            ("WAN goes down", "summary | published", "for the next run"),
        ),
        Example(
            "constrained_device",
            ("--run-for", "3", "--outage", "1"),
            ("radio link down", "budget | peak queue", "qos0_offline"),
        ),
        Example(
            "asyncio_only",
            ("--run-for", "1"),
            ("published #1: acknowledged (Success)", "received  hello/world = message 1"),
        ),
        Example(
            "thread_only",
            ("--run-for", "1"),
            ("published #1: acknowledged (Success)", "received  plain/counter = 1", "CLOSED"),
        ),
        Example(
            "envoys",
            (),
            (
                "set-point 21.5 -> {'accepted': 21.5}",
                "boiler #4: 22.0 °C from dev",
                "set-point 99 -> 422 99 °C is out of range",
                "after dispose -> no response",
            ),
        ),
        Example(
            "gui_panel",
            ("--run-for", "3", "--outage", "0.5"),
            ("state: CONNECTED", "the Wi-Fi drops", "state: RECONNECTING", "demo: done"),
            needs_qt=True,
        ),
    )
}


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, Finished]]:
    """Start every example at once; yield their outcomes once all have ended."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONUNBUFFERED": "1"}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", f"examples.{name}", *example.args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, example in EXAMPLES.items()
        if HAS_QT or not example.needs_qt
    }
    finished: dict[str, Finished] = {}
    try:
        for name, proc in procs.items():
            try:
                stdout, stderr = proc.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
                stderr += f"\n[killed after {TIMEOUT}s]"
                finished[name] = Finished(-9, stdout, stderr)
            else:
                finished[name] = Finished(proc.returncode, stdout, stderr)
        yield finished
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.broker
@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_runs_and_exits_0(name: str, runs: dict[str, Finished]) -> None:
    example = EXAMPLES[name]
    if example.needs_qt and not HAS_QT:
        pytest.skip("needs the 'qt' extra (PySide6, qasync)")
    run = runs[name]
    report = f"exit {run.code}\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"
    assert run.code == 0, report
    for expected in example.expected:
        assert expected in run.stdout, f"missing {expected!r}\n{report}"
    assert "Traceback" not in run.stderr, report


def test_every_example_is_covered() -> None:
    scripts = {
        path.stem for path in (ROOT / "examples").glob("*.py") if not path.name.startswith("_")
    }
    assert scripts - {"live_streams"} <= set(EXAMPLES), "add new examples to EXAMPLES"
