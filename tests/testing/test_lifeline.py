"""A SIGKILLed test process (no teardown, no finalizers) still takes every broker it started along,
including brokers started from worker threads that have since ended."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rxmqtt.testing import MosquittoBroker
from rxmqtt.testing._amqtt import amqtt_available
from rxmqtt.testing._ejabberd import ejabberd_unavailable_reason

OWNER = """
import socket, sys, threading, time
from pathlib import Path

kind, where, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])

def make():
    if kind == "mosquitto":
        from rxmqtt.testing import MosquittoBroker
        return MosquittoBroker()
    if kind == "amqtt":
        from rxmqtt.testing._amqtt import AmqttBroker
        return AmqttBroker()
    from rxmqtt.testing._ejabberd import EjabberdBroker
    return EjabberdBroker()

brokers = []
if where == "thread":  # the starting thread ends before the owner dies
    worker = threading.Thread(target=lambda: brokers.append(make().start()))
    worker.start()
    worker.join()
else:
    brokers.append(make().start())
broker = brokers[0]
with socket.create_connection((broker.host, broker.port), timeout=5):
    pass  # still serving after its starting thread ended
out.write_text(str(broker.port))
while True:
    time.sleep(1)
"""


def _children() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _descendants(pid: int) -> set[int]:
    tree = _children()
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie has exited; its new parent reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _skip_reason(kind: str) -> str | None:
    if kind == "amqtt" and not amqtt_available():
        return "amqtt is not installed (pip install amqtt; it is in the test extra)"
    if kind == "ejabberd":
        return ejabberd_unavailable_reason()
    return None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize(
    ("kind", "where"),
    [
        ("mosquitto", "main"),
        ("mosquitto", "thread"),
        ("amqtt", "main"),
        ("amqtt", "thread"),
        pytest.param("ejabberd", "thread", marks=pytest.mark.slow),
    ],
)
def test_a_sigkilled_owner_takes_its_brokers_along(tmp_path: Path, kind: str, where: str) -> None:
    reason = _skip_reason(kind)
    if reason is not None:
        pytest.skip(reason)
    ready = tmp_path / "port"
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, kind, where, str(ready)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while not ready.exists() or not ready.read_text():
            assert owner.poll() is None, f"the owner exited with {owner.returncode} before serving"
            assert time.monotonic() < deadline, f"{kind} never started"
            time.sleep(0.05)
        started = _descendants(owner.pid)
        assert started, "the owner started no processes"
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        deadline = time.monotonic() + 15
        while (left := {pid for pid in started if _running(pid)}) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not left, f"processes outlived their SIGKILLed owner: {sorted(left)}"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


def test_the_watchdog_leaves_with_its_broker() -> None:
    """A broker stopped (or crashed) the normal way leaves no watchdog behind."""
    with MosquittoBroker() as broker:
        first = broker._procs.watchdog
        assert first is not None
        assert first.poll() is None
        broker.restart(graceful=False)
        assert first.poll() is not None, "a restart reaps the old broker's watchdog"
        second = broker._procs.watchdog
        assert second is not None
        assert second is not first
        assert second.poll() is None
        broker.stop()
        second.wait(timeout=10)
    assert second.returncode == 0, "it left because its broker did, killing nothing"
    assert broker._procs.watchdog is None
