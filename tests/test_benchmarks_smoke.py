"""Smoke test of the benchmark harness: ``python -m benchmarks --quick`` runs and reports every
scenario.

It checks that the harness works (brokers start and stop, every client library runs, the table
is written), not how fast anything is: there are no timing assertions. Missing optional peers
(``aiomqtt``, ``gmqtt``: the ``bench`` extra) are reported in the table, not failures.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rxmqtt.testing import MosquittoNotFoundError, find_mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
RUN_TIMEOUT = 240.0
"""The quick run takes well under a minute; this bound only catches a hang."""

SCENARIOS = (
    "QoS 0 end to end",
    "QoS 1 end to end",
    "Subscription scaling",
    "Offline queue",
    "Keep-alive detection",
    "Broker restart",
    "Publish latency",
    "Many connections",
)


@pytest.mark.timeout(RUN_TIMEOUT + 60)
def test_quick_run_exits_0_and_reports_every_scenario(tmp_path: Path) -> None:
    try:
        find_mosquitto()
    except MosquittoNotFoundError as exc:
        pytest.skip(str(exc))
    output = tmp_path / "benchmarks.md"
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks", "--quick", "--output", str(output)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the harness then stops its brokers and threads
        try:
            stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        pytest.fail(
            f"python -m benchmarks --quick still running after {RUN_TIMEOUT:g} s:\n{stderr}"
        )

    assert proc.returncode == 0, f"exit {proc.returncode}; stderr:\n{stderr[-6000:]}"
    table = output.read_text(encoding="utf-8")
    assert table.strip() in stdout, "the table printed and the table written should be the same"
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    for scenario in SCENARIOS:
        assert any(row.startswith(f"| {scenario}") for row in rows), f"no row for {scenario!r}"
