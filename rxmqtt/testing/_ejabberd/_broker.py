"""One ejabberd node serving MQTT on loopback: :class:`EjabberdBroker`."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Self

from rxmqtt.testing._ejabberd._config import EjabberdConfig, ejabberd_yml, ejabberdctl_cfg
from rxmqtt.testing._ejabberd._discovery import (
    EjabberdNotFoundError,
    ejabberd_unavailable_reason,
    find_ejabberdctl,
)
from rxmqtt.testing._ejabberd._erlang import Epmd, NodeProcesses, RunAs, erlang_env, vm_child
from rxmqtt.testing._ejabberd._probe import probe_connack
from rxmqtt.testing._process import BrokerProcess, BrokerStartError

_BIND_FAILURE_MARKERS = ("eaddrinuse", "address already in use", "Failed to open socket")
_CTL_TIMEOUT = 60.0


class EjabberdBroker(BrokerProcess[EjabberdConfig]):
    """One ejabberd node serving MQTT on 127.0.0.1, with its own temp dir (and epmd).

    ``start()`` picks a free port, names the Erlang node ``ejabberd-<port>@localhost``, and returns
    once an MQTT CONNECT is answered with a successful CONNACK; ``restart()`` reuses the port, the
    node name and the Mnesia spool. Use as a context manager, or call ``close()``, which kills the
    VM (and the private epmd) and removes the temp dir.
    """

    _program: ClassVar[str] = "ejabberd"
    _console_name: ClassVar[str] = "console.out"
    _procs: NodeProcesses

    def __init__(
        self,
        config: EjabberdConfig | None = None,
        *,
        port: int | None = None,
        startup_timeout: float = 60.0,
        cookie: str | None = None,
        _epmd: Epmd | None = None,
        **config_kwargs: Any,
    ) -> None:
        base = config or EjabberdConfig()
        merged = replace(base, **config_kwargs) if config_kwargs else base
        self._ejabberdctl = find_ejabberdctl()
        reason = ejabberd_unavailable_reason()
        if reason is not None:
            raise EjabberdNotFoundError(reason)
        self._run_as = RunAs(self._ejabberdctl)
        self._cookie = cookie or secrets.token_hex(16)
        temp_dir = Path(tempfile.mkdtemp(prefix="rxmqtt-ejabberd-"))
        for sub in ("conf", "spool", "logs", "home"):
            (temp_dir / sub).mkdir()
        (temp_dir / "conf" / "inetrc").write_text("")
        self._run_as.own(
            temp_dir, *(temp_dir / s for s in ("conf", "spool", "logs", "home", "conf/inetrc"))
        )
        owned_epmd = None
        if _epmd is None:
            owned_epmd = Epmd(temp_dir, self._run_as)
            _epmd = owned_epmd
        self._epmd = _epmd
        super().__init__(
            merged,
            NodeProcesses(temp_dir, owned_epmd),
            port=port,
            startup_timeout=startup_timeout,
        )

    # ----------------------------------------------------------------- properties

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:<port>``, as ``ConnectionSettings(endpoints=[...])`` takes it."""
        return f"{self.host}:{self.port}"

    @property
    def tls(self) -> bool:
        """Always False (the harness serves plain MQTT)."""
        return False

    @property
    def username(self) -> str:
        """A username the broker accepts (anonymous login takes any)."""
        return self._config.username

    @property
    def password(self) -> str:
        """A password the broker accepts (any non-empty one; an empty one is refused)."""
        return self._config.password

    def credentials(self) -> dict[str, str]:
        """``{"username": ..., "password": ...}`` to splat into ``ConnectionSettings``."""
        return {"username": self.username, "password": self.password}

    @property
    def node(self) -> str:
        """The Erlang node name, ``ejabberd-<port>@localhost``."""
        return f"ejabberd-{self.port}@localhost"

    @property
    def cookie(self) -> str:
        """The Erlang cookie (generated; shared by the nodes of a cluster)."""
        return self._cookie

    @property
    def epmd_port(self) -> int | None:
        """Port of the private epmd, once started."""
        return self._epmd.port

    @property
    def spool_dir(self) -> Path:
        """The Mnesia directory; survives restarts (retained messages are stored there)."""
        return self._temp_dir / "spool"

    @property
    def config_path(self) -> Path:
        """The generated ``ejabberd.yml`` (``EJABBERD_CONFIG_PATH``)."""
        return self._temp_dir / "conf" / "ejabberd.yml"

    @property
    def log_path(self) -> Path:
        """ejabberd's main log, appended to across restarts."""
        return self._temp_dir / "logs" / "ejabberd.log"

    @property
    def pid(self) -> int | None:
        """PID of the Erlang VM (``beam.smp``) while it runs, or None."""
        return self._procs.vm_pid if self.is_running else None

    def log_text(self) -> str:
        """ejabberd's log, its error log and its console output, for diagnosing failures."""
        parts = []
        for name in ("logs/ejabberd.log", "logs/error.log", self._console_name, "epmd.out"):
            with contextlib.suppress(OSError):
                text = (self._temp_dir / name).read_text(errors="replace")
                if text:
                    parts.append(f"---- {name} ----\n{text}")
        return "\n".join(parts)

    # ----------------------------------------------------------------- lifecycle

    def start(self, *, wait: bool = True) -> Self:
        """Start the node and (unless ``wait=False``) wait until MQTT CONNECT succeeds."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the broker is closed")
            if self.is_running:
                return self
            self._epmd.ensure()
            attempts = 1 if (self._starts > 0 or self._fixed_port is not None) else 4
            last_error: Exception | None = None
            for _ in range(attempts):
                self._pick_port()
                log_offset = self._log_size()
                self._write_config()
                self._spawn()
                if not wait:
                    self._starts += 1
                    return self
                try:
                    self.wait_ready(self._startup_timeout)
                except BrokerStartError as exc:
                    last_error = exc
                    if not self._bind_failed(log_offset) or attempts == 1:
                        self._procs.kill()
                        raise
                    self._procs.kill()
                    self._wipe_spool()
                    continue
                self._starts += 1
                return self
            raise BrokerStartError(
                f"ejabberd could not bind a port after {attempts} attempts: {last_error}"
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Poll with an MQTT CONNECT until a CONNACK 0x00 comes, the node dies, or timeout."""
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            proc = self._started_proc()
            if self._procs.vm_pid is None:
                self._procs.vm_pid = vm_child(proc.pid)
            try:
                reason = probe_connack(self.host, self.port, self.username, self.password, 2.0)
            except OSError as exc:
                last = exc
            else:
                if reason == 0:
                    return
                last = f"CONNACK reason code 0x{reason:02X}"
                if reason in (0x86, 0x87):
                    raise BrokerStartError(
                        f"ejabberd refused the harness's credentials ({last}); log:\n"
                        + self.log_text()
                    )
            if time.monotonic() >= deadline:
                raise BrokerStartError(
                    f"ejabberd did not accept MQTT connections on {self.host}:{self.port} "
                    f"within {timeout:.1f}s (last: {last}); log:\n{self.log_text()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 20.0) -> int | None:
        """Graceful stop: SIGTERM to the Erlang VM (``init:stop()``: applications are stopped,
        MQTT 5 clients get DISCONNECT 0x8B Server shutting down). SIGKILL after ``timeout``.
        Returns the exit code (None if it was not started)."""
        return self._stop(timeout)

    def restart(self, graceful: bool = True, timeout: float = 20.0) -> Self:
        """Stop (SIGTERM) or kill (SIGKILL), then start again on the same port and spool."""
        return super().restart(graceful, timeout)

    def ctl(self, *args: str, timeout: float = _CTL_TIMEOUT, check: bool = True) -> str:
        """Run ``ejabberdctl <args>`` against this node; returns its output.

        Raises :class:`RuntimeError` with the output if it exits non-zero (unless ``check`` is
        False) and :class:`subprocess.TimeoutExpired` after ``timeout``.
        """
        if self._port is None:
            raise RuntimeError("the broker has not been started yet; call start()")
        epmd_port = self._epmd.ensure()
        result = subprocess.run(
            [*self._ctl_prefix(), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            cwd=self.spool_dir,
            env=erlang_env(self._temp_dir / "home", epmd_port),
            timeout=timeout,
            check=False,
            **self._run_as.popen_kwargs(),
        )
        output = (result.stdout + result.stderr).decode(errors="replace")
        output = re.sub(r"=ERROR REPORT=+.*?inetrc not found\s*", "", output, flags=re.S)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"ejabberdctl {' '.join(args)} exited with {result.returncode}: {output.strip()}"
            )
        return output

    # ----------------------------------------------------------------- internals

    def _ctl_prefix(self) -> list[str]:
        """``ejabberdctl`` with every path and the node name pointing into our temp dir."""
        conf = self._temp_dir / "conf"
        return [
            self._ejabberdctl,
            "--config-dir",
            str(conf),
            "--config",
            str(conf / "ejabberd.yml"),
            "--ctl-config",
            str(conf / "ejabberdctl.cfg"),
            "--spool",
            str(self.spool_dir),
            "--logs",
            str(self._temp_dir / "logs"),
            "--node",
            self.node,
        ]

    def _spawn(self) -> None:
        """Run ``ejabberdctl ... foreground`` as the install user; the VM is found later."""
        assert self._epmd.port is not None
        self._procs.vm_pid = None
        self._launch(
            [*self._ctl_prefix(), "foreground"],
            cwd=self.spool_dir,
            env=erlang_env(self._temp_dir / "home", self._epmd.port),
            **self._run_as.popen_kwargs(),
        )

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM the VM (``init:stop()``); before it exists, the ejabberdctl process group."""
        vm = self._procs.vm_pid or vm_child(proc.pid)
        if vm is not None:
            os.kill(vm, signal.SIGTERM)
        else:  # still in the ejabberdctl script: nothing to shut down gracefully
            os.killpg(proc.pid, signal.SIGTERM)

    def _bind_failed(self, log_offset: int) -> bool:
        """Whether the failed start lost the race for its port (worth retrying on another)."""
        lowered = self._output_since(log_offset).lower()
        return any(marker.lower() in lowered for marker in _BIND_FAILURE_MARKERS)

    def _wipe_spool(self) -> None:
        """Start the next attempt with an empty Mnesia dir (the node name changes with the port)."""
        spool = self.spool_dir
        shutil.rmtree(spool, ignore_errors=True)
        spool.mkdir()
        self._run_as.own(spool)

    def _write_config(self) -> None:
        """Write ``ejabberd.yml`` and ``ejabberdctl.cfg`` for this port, owned by the user."""
        conf = self._temp_dir / "conf"
        (conf / "ejabberd.yml").write_text(ejabberd_yml(self._config, self.port))
        (conf / "ejabberdctl.cfg").write_text(ejabberdctl_cfg(self._cookie))
        self._run_as.own(conf / "ejabberd.yml", conf / "ejabberdctl.cfg")
