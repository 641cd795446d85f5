"""A real Mosquitto broker on a free loopback port, for tests, demos and benchmarks.

:class:`MosquittoBroker` writes a config for a :class:`BrokerConfig` into a private temp dir,
starts ``mosquitto`` there, and can stop it gracefully, crash it (SIGKILL) and restart it on the
same port with the same persistence directory. Everything it starts is killed and removed by
:meth:`MosquittoBroker.close` (also on garbage collection / interpreter exit as a safety net).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Self

from rxmqtt.testing._process import LOOPBACK as LOOPBACK
from rxmqtt.testing._process import BrokerProcess, BrokerStartError, Processes, free_port
from rxmqtt.testing.certs import TlsFiles

__all__ = [
    "BrokerConfig",
    "BrokerStartError",
    "MosquittoBroker",
    "MosquittoNotFoundError",
    "find_mosquitto",
    "free_port",
]

_INSTALL_HINT = "install it with: apt-get install -y mosquitto (Debian/Ubuntu package 'mosquitto')"
_BIND_FAILURE_MARKERS = ("Address already in use", "Error: Unable to bind")


class MosquittoNotFoundError(RuntimeError):
    """The ``mosquitto`` (or ``mosquitto_passwd``) executable is not installed."""


@dataclass(frozen=True)
class BrokerConfig:
    """What the generated ``mosquitto.conf`` enables. The default is an anonymous plain listener.

    - ``persistence``: keep sessions and retained messages in ``data_dir`` across restarts
      (saved on graceful stop, and every ``autosave_interval`` seconds for crash tests).
    - ``users``: username -> password; turns on a password file and ``allow_anonymous false``.
    - ``acl``: text of an ACL file (``user``/``topic`` lines), for "not authorized" tests.
    - ``tls``: serve TLS with ``tls.server_cert`` (or ``tls.wrong_host_cert`` if
      ``tls_wrong_host``); ``require_certificate`` demands a client certificate signed by
      ``tls.ca_file``; ``use_identity_as_username`` takes the username from its CN.
    - ``max_packet_size`` / ``max_keepalive`` / ``max_inflight_messages`` / ``max_queued_messages``
      / ``message_expiry`` knobs map to the Mosquitto options of the same names.
    - ``websockets``: also serve MQTT over WebSockets on a second loopback listener
      (:attr:`MosquittoBroker.websockets_port`, TLS too with ``tls``: ``wss``). Debian's
      Mosquitto 2.0 runs WebSockets through a libwebsockets built without external polling, so
      a WebSockets-only broker does not start; the plain listener stays.
    - ``extra``: raw config lines appended at the end (listener-scoped when they follow it).
    """

    persistence: bool = False
    autosave_interval: int = 1
    users: Mapping[str, str] | None = None
    allow_anonymous: bool | None = None
    acl: str | None = None
    tls: TlsFiles | None = None
    require_certificate: bool = False
    use_identity_as_username: bool = False
    tls_wrong_host: bool = False
    max_packet_size: int | None = None
    max_keepalive: int | None = None
    max_inflight_messages: int | None = None
    max_queued_messages: int | None = None
    retain_available: bool = True
    websockets: bool = False
    extra: str = ""
    log_types: tuple[str, ...] = field(default=("all",))

    def __post_init__(self) -> None:
        if self.users is not None:
            for name in self.users:
                if not name or ":" in name or "\n" in name:
                    raise ValueError(f"users: invalid username {name!r}")
        if self.autosave_interval < 0:
            raise ValueError("autosave_interval must be >= 0")
        if (self.require_certificate or self.use_identity_as_username) and self.tls is None:
            raise ValueError("require_certificate/use_identity_as_username need tls=TlsFiles")
        if self.tls_wrong_host and self.tls is None:
            raise ValueError("tls_wrong_host needs tls=TlsFiles")

    @property
    def anonymous_allowed(self) -> bool:
        """Whether clients without credentials are let in (default: yes unless ``users``)."""
        if self.allow_anonymous is not None:
            return self.allow_anonymous
        return self.users is None and not self.use_identity_as_username


def find_mosquitto(name: str = "mosquitto") -> str:
    """Path of a Mosquitto executable (``$RXMQTT_MOSQUITTO`` overrides ``mosquitto``)."""
    if name == "mosquitto" and os.environ.get("RXMQTT_MOSQUITTO"):
        return os.environ["RXMQTT_MOSQUITTO"]
    found = shutil.which(name)
    if found:
        return found
    for directory in ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"):
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise MosquittoNotFoundError(f"{name} executable not found; {_INSTALL_HINT}")


class MosquittoBroker(BrokerProcess[BrokerConfig]):
    """One Mosquitto process, listening only on 127.0.0.1, with its own temp dir.

    ``start()`` picks a free port (retrying if Mosquitto loses the race for it) and returns once
    the port accepts connections; ``restart()`` reuses the port and the data dir. Use as a
    context manager, or call ``close()``, which kills the process and removes the temp dir.
    """

    _program: ClassVar[str] = "mosquitto"
    _console_name: ClassVar[str] = "mosquitto.out"

    def __init__(
        self,
        config: BrokerConfig | None = None,
        *,
        port: int | None = None,
        executable: str | None = None,
        startup_timeout: float = 10.0,
        **config_kwargs: Any,
    ) -> None:
        base = config or BrokerConfig()
        merged = replace(base, **config_kwargs) if config_kwargs else base
        self._executable = executable
        temp_dir = Path(tempfile.mkdtemp(prefix="rxmqtt-mosquitto-"))
        self._data_dir = temp_dir / "data"
        self._data_dir.mkdir()
        self._websockets_port: int | None = None
        super().__init__(merged, Processes(temp_dir), port=port, startup_timeout=startup_timeout)

    # ----------------------------------------------------------------- properties

    @property
    def tls(self) -> bool:
        """Whether the listener speaks TLS."""
        return self._config.tls is not None

    @property
    def websockets_port(self) -> int:
        """The WebSockets listener's port (``BrokerConfig(websockets=True)``), kept on restart."""
        if not self._config.websockets:
            raise RuntimeError("this broker has no WebSockets listener (BrokerConfig.websockets)")
        if self._websockets_port is None:
            raise RuntimeError("the broker has not been started yet; call start()")
        return self._websockets_port

    @property
    def websockets_url(self) -> str:
        """``ws://127.0.0.1:<websockets_port>/mqtt``, or ``wss://`` with TLS."""
        scheme = "wss" if self.tls else "ws"
        return f"{scheme}://{self.host}:{self.websockets_port}/mqtt"

    @property
    def data_dir(self) -> Path:
        """Persistence directory (``mosquitto.db`` lives here); survives restarts."""
        return self._data_dir

    @property
    def config_path(self) -> Path:
        """The generated ``mosquitto.conf``."""
        return self._temp_dir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        """Mosquitto's log file (``log_type all``), appended to across restarts."""
        return self._temp_dir / "mosquitto.log"

    def log_text(self) -> str:
        """Mosquitto's log plus anything it wrote to stdout/stderr, for diagnosing failures."""
        parts = []
        for path in (self.log_path, self._console_path):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace")
                if text:
                    parts.append(text)
        return "\n".join(parts)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        """Start Mosquitto and wait until its port accepts connections. No-op if running."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the broker is closed")
            if self.is_running:
                return self
            executable = self._executable or find_mosquitto()
            self._prepare_files()
            attempts = 5
            last_error: Exception | None = None
            for _ in range(attempts):
                self._pick_port()
                if self._config.websockets and (self._starts == 0 or self._websockets_port is None):
                    self._websockets_port = free_port()
                log_offset = self._log_size()
                self._write_config()
                self._launch([executable, "-c", str(self.config_path)], cwd=self._temp_dir)
                try:
                    self.wait_ready(self._startup_timeout)
                except BrokerStartError as exc:
                    last_error = exc
                    if not self._bind_failed(log_offset):
                        raise
                    self._procs.kill()
                    if self._starts > 0 or self._fixed_port is not None:
                        # Same port required (restart): give the old socket a moment.
                        time.sleep(0.05)
                    continue
                self._starts += 1
                return self
            raise BrokerStartError(
                f"mosquitto could not bind a port after {attempts} attempts: {last_error}"
            )

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Poll-connect to the port until it accepts, the process dies, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        ports = [self.port]
        if self._config.websockets and self._websockets_port is not None:
            ports.append(self._websockets_port)
        while True:
            proc = self._started_proc()
            try:
                for port in ports:
                    with socket.create_connection((self.host, port), timeout=0.5):
                        pass
            except OSError:
                if time.monotonic() >= deadline:
                    raise BrokerStartError(
                        f"mosquitto did not accept connections on {self.host} port(s) {ports} "
                        f"within {timeout:.1f}s; log:\n{self.log_text()}"
                    ) from None
                time.sleep(0.01)
                continue
            if proc.poll() is None:
                return

    def stop(self, timeout: float = 10.0) -> int | None:
        """Graceful stop: SIGTERM and wait (Mosquitto saves persistence, closes clients).

        Falls back to SIGKILL after ``timeout``. Returns the exit code (None if not running).
        """
        return self._stop(timeout)

    # ----------------------------------------------------------------- internals

    def _bind_failed(self, log_offset: int) -> bool:
        """Whether the failed start lost the race for its port (worth retrying on another)."""
        text = self._output_since(log_offset)
        return any(marker in text for marker in _BIND_FAILURE_MARKERS)

    def _prepare_files(self) -> None:
        cfg = self._config
        if cfg.users is not None and self._starts == 0:
            path = self._temp_dir / "passwords"
            path.write_text("".join(f"{u}:{p}\n" for u, p in cfg.users.items()))
            os.chmod(path, 0o600)
            passwd = find_mosquitto("mosquitto_passwd")
            result = subprocess.run(
                [passwd, "-U", str(path)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=30,
                check=False,
            )
            if result.returncode != 0:
                raise BrokerStartError(
                    "mosquitto_passwd -U failed: "
                    + (result.stderr or result.stdout).decode(errors="replace")
                )
        if cfg.acl is not None:
            (self._temp_dir / "acl").write_text(cfg.acl)

    def _config_text(self) -> str:
        cfg = self._config
        lines = ["# generated by rxmqtt.testing.MosquittoBroker"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # Mosquitto drops root privileges to 'mosquitto' by default, which could not
            # write our temp dir; stay as root (Mosquitto will log a warning).
            lines.append("user root")
        lines += [
            f"log_dest file {self.log_path}",
            *(f"log_type {t}" for t in cfg.log_types),
            "log_timestamp true",
            "connection_messages true",
            f"allow_anonymous {'true' if cfg.anonymous_allowed else 'false'}",
        ]
        if cfg.users is not None:
            lines.append(f"password_file {self._temp_dir / 'passwords'}")
        if cfg.acl is not None:
            lines.append(f"acl_file {self._temp_dir / 'acl'}")
        if cfg.persistence:
            lines += [
                "persistence true",
                f"persistence_location {self._data_dir}/",
                f"autosave_interval {cfg.autosave_interval}",
            ]
        else:
            lines.append("persistence false")
        if cfg.max_keepalive is not None:
            lines.append(f"max_keepalive {cfg.max_keepalive}")
        if cfg.max_packet_size is not None:
            lines.append(f"max_packet_size {cfg.max_packet_size}")
        if cfg.max_inflight_messages is not None:
            lines.append(f"max_inflight_messages {cfg.max_inflight_messages}")
        if cfg.max_queued_messages is not None:
            lines.append(f"max_queued_messages {cfg.max_queued_messages}")
        if not cfg.retain_available:
            lines.append("retain_available false")
        lines.append(f"listener {self.port} {self.host}")
        lines += self._tls_lines()
        if cfg.websockets:
            # socket_domain: libwebsockets 4.1 otherwise binds [::] (every interface) when given
            # an IPv4 address; with it the listener stays on 127.0.0.1.
            lines += [
                f"listener {self.websockets_port} {self.host}",
                "protocol websockets",
                "socket_domain ipv4",
                *self._tls_lines(),
            ]
        if cfg.extra:
            lines.append(cfg.extra.rstrip("\n"))
        return "\n".join(lines) + "\n"

    def _tls_lines(self) -> list[str]:
        """The listener-scoped TLS options (repeated for each listener)."""
        cfg = self._config
        if cfg.tls is None:
            return []
        cert, key = (
            (cfg.tls.wrong_host_cert, cfg.tls.wrong_host_key)
            if cfg.tls_wrong_host
            else (cfg.tls.server_cert, cfg.tls.server_key)
        )
        lines = [
            f"cafile {cfg.tls.ca_file}",
            f"certfile {cert}",
            f"keyfile {key}",
            f"require_certificate {'true' if cfg.require_certificate else 'false'}",
        ]
        if cfg.use_identity_as_username:
            lines.append("use_identity_as_username true")
        return lines

    def _write_config(self) -> None:
        self.config_path.write_text(self._config_text())
