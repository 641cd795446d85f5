"""The OS and Erlang plumbing under an ejabberd node: user, environment, epmd, the VM process.

ejabberdctl refuses to run as anyone but its install user, so everything is started through
:class:`RunAs` with a clean environment that points at our private ``epmd``. The Erlang VM is a
child of the ``ejabberdctl`` shell; :class:`NodeProcesses` finds it to stop or kill it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from rxmqtt.testing._ejabberd._discovery import find_tool, install_user
from rxmqtt.testing._lifeline import guard
from rxmqtt.testing._process import (
    LOOPBACK,
    BrokerStartError,
    Processes,
    free_port,
    kill_and_reap,
)

try:  # POSIX only; importing this module must not fail elsewhere
    import pwd
except ImportError:  # pragma: no cover - Windows
    pwd = None  # type: ignore[assignment]


def child_pids(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (Linux /proc)."""
    found = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                text = (task / "children").read_text()
                found += [int(x) for x in text.split()]
    if found:
        return found
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found.append(int(entry.name))
    return found


def vm_child(pid: int) -> int | None:
    """The Erlang VM (``beam.smp``) started by the ``ejabberdctl`` shell ``pid``, if any yet."""
    for child in child_pids(pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{child}/comm").read_text().strip().startswith("beam"):
                return child
    return None


class RunAs:
    """How to start a process as the ejabberd install user, with a clean environment."""

    def __init__(self, ejabberdctl: str) -> None:
        self.user = install_user(ejabberdctl)
        self.drop = os.geteuid() == 0 and bool(self.user) and self.user != "root"
        if self.drop:
            entry = pwd.getpwnam(self.user)
            self.uid, self.gid = entry.pw_uid, entry.pw_gid
        else:
            self.uid, self.gid = os.geteuid(), os.getegid()

    def popen_kwargs(self) -> dict[str, Any]:
        """``subprocess.Popen`` arguments that drop root to the install user (none otherwise)."""
        if not self.drop:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def own(self, *paths: Path) -> None:
        """Hand ``paths`` to the install user, so that the node can write them."""
        if not self.drop:
            return
        for path in paths:
            os.chown(path, self.uid, self.gid)


def erlang_env(home: Path, epmd_port: int) -> dict[str, str]:
    """The whole environment of an ejabberdctl or epmd process: ours is not inherited."""
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "ERL_EPMD_PORT": str(epmd_port),
        "ERL_EPMD_ADDRESS": LOOPBACK,
    }


class Epmd:
    """A private epmd on a free loopback port (foreground child; killed by :meth:`close`)."""

    def __init__(self, directory: Path, run_as: RunAs) -> None:
        self._directory = directory
        self._run_as = run_as
        self._lock = threading.Lock()
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.watchdog: subprocess.Popen[bytes] | None = None
        """Kills epmd should this process die without cleaning up (see ``_lifeline``)."""

    def ensure(self, timeout: float = 10.0) -> int:
        """Start epmd unless it runs; returns its port once it accepts connections."""
        with self._lock:
            if self.proc is not None and self.proc.poll() is None and self.port is not None:
                return self.port
            epmd = find_tool("epmd")
            last = ""
            for _ in range(5):
                port = free_port()
                out = (self._directory / "epmd.out").open("ab")
                proc = subprocess.Popen(
                    [epmd, "-port", str(port), "-address", LOOPBACK],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self._directory,
                    env=erlang_env(self._directory, port),
                    start_new_session=True,
                    **self._run_as.popen_kwargs(),
                )
                out.close()
                kill_and_reap(self.watchdog)  # (a failed try's: its epmd is dead or dying)
                self.watchdog = guard(proc.pid)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and proc.poll() is None:
                    try:
                        with socket.create_connection((LOOPBACK, port), timeout=0.5):
                            break
                    except OSError:
                        time.sleep(0.02)
                if proc.poll() is None:
                    self.proc, self.port = proc, port
                    return port
                last = (self._directory / "epmd.out").read_text(errors="replace")
            raise BrokerStartError(f"epmd did not start on a free port: {last}")

    def close(self) -> None:
        """Kill epmd (if it runs) and reap it."""
        with self._lock:
            proc, self.proc = self.proc, None
            kill_and_reap(proc)
            watchdog, self.watchdog = self.watchdog, None
            kill_and_reap(watchdog)


class NodeProcesses(Processes):
    """What the cleanup finalizer kills: the ejabberdctl shell, its Erlang VM, an owned epmd."""

    def __init__(self, temp_dir: Path, epmd: Epmd | None) -> None:
        super().__init__(temp_dir)
        self.epmd = epmd  # owned: killed here; None when shared with a cluster
        self.vm_pid: int | None = None

    def kill(self) -> None:
        """SIGKILL the Erlang VM (the shell then exits by itself), and the shell if it lingers."""
        proc = self.proc
        if proc is None:
            return
        pids = [self.vm_pid] if self.vm_pid else []
        if proc.poll() is None:
            pids += child_pids(proc.pid)
            if not self.vm_pid:
                time.sleep(0.05)  # ejabberdctl may be between a helper and exec'ing erl
                pids += child_pids(proc.pid)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        # ejabberdctl (the shell) reaps the VM and exits by itself; kill it only if it lingers.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=3)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)

    def cleanup(self) -> None:
        """Kill the node, close its console file, remove the temp dir, then kill an owned epmd."""
        super().cleanup()
        if self.epmd is not None:
            self.epmd.close()
