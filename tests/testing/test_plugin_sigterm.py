"""A pytest run killed with SIGTERM (``timeout``, a CI runner) still stops its brokers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

TEST = """
import os, pathlib, time

def test_waits_to_be_killed(rxmqtt_mosquitto):
    pathlib.Path(os.environ["PID_FILE"]).write_text(str(rxmqtt_mosquitto.pid))
    while True:
        time.sleep(0.05)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_tears_the_broker_down(tmp_path: Path) -> None:
    (tmp_path / "test_killed.py").write_text(TEST)
    pid_file = tmp_path / "broker.pid"
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "rxmqtt.testing"],
        cwd=tmp_path,
        env={**os.environ, "PID_FILE": str(pid_file)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert run.poll() is None, "the inner pytest ended before its test started"
            assert time.monotonic() < deadline, "the inner test never started its broker"
            time.sleep(0.05)
        broker = int(pid_file.read_text())
        assert _alive(broker)
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(broker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(broker), f"broker {broker} outlived the SIGTERMed pytest run"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
