"""An amqtt broker (pure Python, MQTT 3.1.1 only) on a free loopback port, for rxmqtt's own tests.

Private: not part of the supported API. It lets the MQTT 3.1.1 path be tested against a broker
that speaks nothing else. :class:`AmqttBroker` runs ``python -m amqtt.scripts.broker_script``
from this interpreter's environment in a private temp dir, as :class:`MosquittoBroker` runs
Mosquitto: ``start()`` waits until it serves, ``stop()`` is graceful (SIGINT, amqtt's Ctrl-C),
``kill()`` a crash, and everything it starts dies with the test process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

from rxmqtt.testing._process import BrokerProcess, BrokerStartError, Processes

__all__ = ["AmqttBroker", "AmqttConfig", "AmqttNotFoundError", "amqtt_available"]

_BIND_FAILURE_MARKERS = ("address already in use", "Errno 98")


class AmqttNotFoundError(RuntimeError):
    """The ``amqtt`` package is not installed in this interpreter's environment."""


def amqtt_available() -> bool:
    """Whether ``amqtt`` can be started from this interpreter."""
    return importlib.util.find_spec("amqtt") is not None


@dataclass(frozen=True)
class AmqttConfig:
    """What the generated broker config enables: anonymous clients on one plain listener."""

    allow_anonymous: bool = True


class AmqttBroker(BrokerProcess[AmqttConfig]):
    """One amqtt process, listening only on 127.0.0.1, with its own temp dir."""

    _program: ClassVar[str] = "amqtt"
    _console_name: ClassVar[str] = "amqtt.out"

    def __init__(
        self,
        config: AmqttConfig | None = None,
        *,
        port: int | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        temp_dir = Path(tempfile.mkdtemp(prefix="rxmqtt-amqtt-"))
        super().__init__(
            config or AmqttConfig(),
            Processes(temp_dir),
            port=port,
            startup_timeout=startup_timeout,
        )

    @property
    def tls(self) -> bool:
        """Always False: the harness gives amqtt a plain listener only."""
        return False

    @property
    def config_path(self) -> Path:
        """The generated broker config (YAML)."""
        return self._temp_dir / "amqtt.yaml"

    @property
    def log_path(self) -> Path:
        """amqtt logs to its console: stdout and stderr, appended to across restarts."""
        return self._console_path

    def log_text(self) -> str:
        """Everything amqtt logged, for diagnosing failures."""
        with contextlib.suppress(OSError):
            return self._console_path.read_text(errors="replace")
        return ""

    def start(self) -> Self:
        """Start amqtt and wait until its listener is bound. No-op if running."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the broker is closed")
            if self.is_running:
                return self
            if not amqtt_available():
                raise AmqttNotFoundError(
                    "amqtt is not installed in this environment; pip install amqtt"
                )
            last_error: Exception | None = None
            for _ in range(5):
                self._pick_port()
                offset = self._log_size()
                self.config_path.write_text(self._config_text())
                self._launch(
                    [
                        sys.executable,
                        "-m",
                        "amqtt.scripts.broker_script",
                        "-c",
                        str(self.config_path),
                    ],
                    cwd=self._temp_dir,
                )
                try:
                    self._wait_bound(offset)
                except BrokerStartError as exc:
                    last_error = exc
                    self._procs.kill()
                    lowered = self._console_since(offset).lower()
                    if any(marker.lower() in lowered for marker in _BIND_FAILURE_MARKERS):
                        continue
                    raise
                self._starts += 1
                return self
            raise BrokerStartError(f"amqtt could not bind a port after 5 attempts: {last_error}")

    def stop(self, timeout: float = 10.0) -> int | None:
        """Graceful stop: SIGINT (amqtt shuts down on Ctrl-C), SIGKILL after ``timeout``."""
        return self._stop(timeout)

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGINT)

    def _wait_bound(self, offset: int) -> None:
        """Wait for amqtt's "bind to" line (it logs it once the listener is up)."""
        bound = f"bind to {self.host}:{self.port}"
        deadline = time.monotonic() + self._startup_timeout
        while bound not in self._console_since(offset):
            self._started_proc()  # raises with the log once the process has exited
            if time.monotonic() >= deadline:
                raise BrokerStartError(
                    f"amqtt did not bind {self.host}:{self.port} within "
                    f"{self._startup_timeout:.1f}s; log:\n{self.log_text()}"
                )
            time.sleep(0.02)

    def _console_since(self, offset: int) -> str:
        """What amqtt printed after ``offset`` (this start's lines)."""
        with contextlib.suppress(OSError), self._console_path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")
        return ""

    def _config_text(self) -> str:
        anonymous = "true" if self._config.allow_anonymous else "false"
        return (
            "# generated by rxmqtt.testing._amqtt.AmqttBroker\n"
            "listeners:\n"
            "  default:\n"
            "    type: tcp\n"
            f"    bind: {self.host}:{self.port}\n"
            "plugins:\n"
            "  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
            f"    allow_anonymous: {anonymous}\n"
        )
