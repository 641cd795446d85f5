"""Every process the harness starts dies with the process that started it, even a SIGKILLed one.

A test run that is SIGKILLed (or crashes) runs no teardown and no ``weakref.finalize``, so the
brokers it started would live on. :func:`guard` pairs each one with a tiny watchdog (this file,
run as a script by a bare interpreter) that blocks on two things: the *lifeline*, a pipe whose
write end only the test process holds (the kernel closes it whatever way that process ends,
which the watchdog sees as end-of-file), and the broker itself (a pidfd), so that it exits with
the broker. When the lifeline breaks first, it SIGKILLs the broker's process group (the harness
starts each broker in a session of its own, so that is the broker and its helpers).

Not ``prctl(PR_SET_PDEATHSIG)``: that fires when the *thread* that forked the child exits, and
brokers are (re)started from worker threads; nor does it reach a broker's own children.
A watchdog outlives nothing it guards: it exits as soon as its broker has.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading

__all__ = ["guard"]

_POLL_SECONDS = 0.5
"""How often a watchdog without a pidfd (no ``os.pidfd_open``) checks that its broker lives."""

_lock = threading.Lock()
_lifeline: tuple[int, int, int] | None = None
"""(owner pid, read end, write end). Both ends are non-inheritable: only watchdogs get the read
end (``pass_fds``), and nothing but this process ever holds the write end."""


def _read_end() -> int:
    """The lifeline's read end, made on first use (and anew in a forked child, whose inherited
    write end would otherwise keep the parent's lifeline alive only as long as they both live)."""
    global _lifeline
    with _lock:
        if _lifeline is None or _lifeline[0] != os.getpid():
            read_end, write_end = os.pipe()
            _lifeline = (os.getpid(), read_end, write_end)
        return _lifeline[1]


def guard(pid: int) -> subprocess.Popen[bytes]:
    """Start the watchdog that SIGKILLs process ``pid`` and its process group once this
    process is gone. ``pid`` must be a child of this process not reaped yet (a ``Popen`` that
    nobody has polled), so that the pidfd opened here cannot name another process."""
    lifeline = _read_end()
    pidfd = -1
    if hasattr(os, "pidfd_open"):
        with contextlib.suppress(OSError):  # (an old kernel: the watchdog polls instead)
            pidfd = os.pidfd_open(pid)
    try:
        return subprocess.Popen(
            [sys.executable, "-I", "-S", __file__, str(pid), str(lifeline), str(pidfd)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(lifeline,) if pidfd < 0 else (lifeline, pidfd),
            start_new_session=True,  # a Ctrl-C for the test run is the test run's to handle
        )
    finally:
        if pidfd >= 0:
            os.close(pidfd)


# ------------------------------------------------------------------- the watchdog itself


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill(pid: int, pidfd: int) -> None:
    """SIGKILL the broker's process group (its id is the broker's pid while the broker, its
    leader, has not exited), then the broker itself should it have left the group."""
    ready, _, _ = select.select([pidfd], [], [], 0) if pidfd >= 0 else ([], [], [])
    if ready:
        return  # exited meanwhile: its pid (and group id) may already be someone else's
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if pidfd >= 0:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)


def _watch(pid: int, lifeline: int, pidfd: int) -> None:
    """Block until the broker exits (then just leave) or the lifeline breaks (kill it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watched = [lifeline] if pidfd < 0 else [lifeline, pidfd]
    while True:
        ready, _, _ = select.select(watched, [], [], _POLL_SECONDS if pidfd < 0 else None)
        if pidfd in ready:
            return
        if lifeline in ready and not os.read(lifeline, 1):
            _kill(pid, pidfd)
            return
        if pidfd < 0 and not _alive(pid):
            return


if __name__ == "__main__":
    _watch(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
