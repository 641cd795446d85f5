"""What the harness brokers share: one broker process on loopback with a private temp dir.

:class:`BrokerProcess` is the base of :class:`~rxmqtt.testing.MosquittoBroker` and
:class:`~rxmqtt.testing.EjabberdBroker`. It holds the lifecycle plumbing both need in the same
way -- the cleanup holder that a ``weakref.finalize`` runs (so a forgotten broker is still killed
and its directory removed), the port choice across restarts, the console file, ``kill()``,
``close()``, the context manager and ``repr`` -- and leaves to each subclass how its broker is
configured, spawned, probed for readiness and asked to stop. Every process it launches is
paired with a watchdog (:mod:`rxmqtt.testing._lifeline`) that kills it should the test process
die without teardown (SIGKILL, a crash).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import weakref
from abc import abstractmethod
from pathlib import Path
from typing import IO, Any, ClassVar, Generic, Self, TypeVar

from rxmqtt._scoped import StartedOnEnter, once_started
from rxmqtt.testing._lifeline import guard

LOOPBACK = "127.0.0.1"

ConfigT = TypeVar("ConfigT")


class BrokerStartError(RuntimeError):
    """The broker exited or did not accept connections in time; the message carries its log."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free a moment ago (bind port 0, read it, close)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def kill_and_reap(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL ``proc`` if it is still running and reap it (waits up to 5 s)."""
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


class Processes:
    """What the cleanup finalizer kills and removes.

    It never references the broker: a finalizer holding the broker would keep it alive forever.
    """

    def __init__(self, temp_dir: Path) -> None:
        self.temp_dir = temp_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.watchdog: subprocess.Popen[bytes] | None = None
        """Kills ``proc`` should this process die without cleaning up (see ``_lifeline``)."""
        self.output: IO[bytes] | None = None

    def kill(self) -> None:
        """SIGKILL the broker process and reap it; a no-op when it is not running."""
        kill_and_reap(self.proc)

    def reap_watchdog(self) -> None:
        """Reap the last broker's watchdog, which leaves once its broker has exited."""
        watchdog, self.watchdog = self.watchdog, None
        if watchdog is not None and watchdog.poll() is None:
            try:
                watchdog.wait(timeout=5)
            except subprocess.TimeoutExpired:  # (its broker still runs: it must not stay)
                kill_and_reap(watchdog)

    def cleanup(self) -> None:
        """Kill what is left, close the console file and remove the temp dir. Idempotent."""
        self.kill()
        self.proc = None
        self.reap_watchdog()
        if self.output is not None:
            self.output.close()
            self.output = None
        shutil.rmtree(self.temp_dir, ignore_errors=True)


class BrokerProcess(StartedOnEnter, Generic[ConfigT]):
    """One broker process listening only on 127.0.0.1, with its own temp dir.

    Subclasses set :attr:`_program` (for messages) and :attr:`_console_name` (the file under the
    temp dir that collects the process's stdout and stderr), and implement ``start``, ``stop``,
    ``tls``, ``log_path`` and ``log_text`` (and ``pid``, when the broker is not the process
    they launched).
    """

    _program: ClassVar[str]
    _console_name: ClassVar[str]

    def __init__(
        self, config: ConfigT, procs: Processes, *, port: int | None, startup_timeout: float
    ) -> None:
        self._config = config
        self._fixed_port = port
        self._port: int | None = port
        self._startup_timeout = startup_timeout
        self._lock = threading.RLock()
        self._closed = False
        self._starts = 0
        self._temp_dir = procs.temp_dir
        self._procs = procs
        self._finalizer = weakref.finalize(self, procs.cleanup)

    # ----------------------------------------------------------------- properties

    @property
    def config(self) -> ConfigT:
        """The configuration this broker runs with."""
        return self._config

    @property
    def host(self) -> str:
        """Always ``"127.0.0.1"``: the broker never listens on other interfaces."""
        return LOOPBACK

    @property
    def port(self) -> int:
        """The listening port (fixed after the first successful start)."""
        return once_started(self._port, "the broker has not been started yet; call start()")

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<port>``, or ``mqtts://`` when the listener speaks TLS."""
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    @abstractmethod
    def tls(self) -> bool:
        """Whether the listener speaks TLS."""

    @property
    def temp_dir(self) -> Path:
        """Private directory holding the generated config, the logs and the persistent data."""
        return self._temp_dir

    @property
    @abstractmethod
    def log_path(self) -> Path:
        """The broker's main log file, appended to across restarts."""

    @property
    def pid(self) -> int | None:
        """PID of the running broker process, or None."""
        proc = self._procs.proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def is_running(self) -> bool:
        """Whether the broker's process is alive."""
        proc = self._procs.proc
        return proc is not None and proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit code of the last run once it has exited (killed: negative, or 128+N via a shell)."""
        proc = self._procs.proc
        return None if proc is None else proc.poll()

    @abstractmethod
    def log_text(self) -> str:
        """Everything the broker logged and printed, for diagnosing failures."""

    # ----------------------------------------------------------------- lifecycle

    @abstractmethod
    def start(self) -> Self:
        """Start the broker and wait until it serves; a no-op if it is running."""

    @abstractmethod
    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the broker gracefully, SIGKILL after ``timeout``; returns the exit code."""

    def kill(self) -> int | None:
        """Crash the broker: SIGKILL, no persistence save, no goodbye (clients see a reset).

        Returns the exit code (None if it was not started).
        """
        with self._lock:
            proc = self._procs.proc
            if proc is None:
                return None
            self._procs.kill()
            return proc.returncode

    def restart(self, graceful: bool = True, timeout: float = 10.0) -> Self:
        """Stop (SIGTERM) or kill (SIGKILL), then start again on the same port and data."""
        with self._lock:
            if graceful:
                self.stop(timeout)
            else:
                self.kill()
            return self.start()

    def close(self) -> None:
        """Kill everything this broker started and remove the temp dir. Idempotent."""
        with self._lock:
            self._closed = True
            self._finalizer()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        port = self._port if self._port is not None else "?"
        return f"<{type(self).__name__} {self.host}:{port} {state} pid={self.pid}>"

    # ----------------------------------------------------------------- for subclasses

    @property
    def _console_path(self) -> Path:
        """Where the process's stdout and stderr go (appended to across restarts)."""
        return self._temp_dir / self._console_name

    def _pick_port(self) -> None:
        """A new free port until the first successful start (unless one was given), then keep it."""
        if self._port is None or (self._starts == 0 and self._fixed_port is None):
            self._port = free_port()

    def _launch(self, args: list[str], cwd: Path, **popen_kwargs: Any) -> None:
        """Start ``args`` in a new session, its stdout and stderr appended to the console file,
        guarded by a watchdog that kills the session should this process die."""
        if self._procs.output is None:
            self._procs.output = self._console_path.open("ab")
        self._procs.reap_watchdog()  # (the previous run's, gone with its broker)
        self._procs.proc = proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._procs.output,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            **popen_kwargs,
        )
        self._procs.watchdog = guard(proc.pid)

    def _started_proc(self) -> subprocess.Popen[bytes]:
        """The process ``start()`` spawned, still alive; else BrokerStartError with the log."""
        proc = self._procs.proc
        if proc is None:
            raise BrokerStartError(f"{self._program} is not running (start() was not called)")
        code = proc.poll()
        if code is not None:
            raise BrokerStartError(
                f"{self._program} exited with code {code} during startup; log:\n{self.log_text()}"
            )
        return proc

    def _stop(self, timeout: float) -> int | None:
        """Ask the process to stop (:meth:`_terminate`), wait ``timeout``, then SIGKILL it."""
        with self._lock:
            proc = self._procs.proc
            if proc is None:
                return None
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self._terminate(proc)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self._procs.kill()
            return proc.returncode

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        """Send the graceful-stop signal (SIGTERM to the process; subclasses may aim elsewhere)."""
        proc.terminate()

    def _log_size(self) -> int:
        """Current size of the log: where a new start's lines begin."""
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def _output_since(self, log_offset: int) -> str:
        """The log written after ``log_offset`` plus the console output: where bind errors show."""
        text = ""
        with contextlib.suppress(OSError), self.log_path.open("rb") as fh:
            fh.seek(log_offset)
            text = fh.read().decode(errors="replace")
        with contextlib.suppress(OSError):
            text += self._console_path.read_text(errors="replace")
        return text
