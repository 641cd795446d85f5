"""A real ejabberd MQTT 5 broker (``mod_mqtt``) on free loopback ports, alone or as a cluster.

:class:`EjabberdBroker` has the surface of :class:`~rxmqtt.testing.MosquittoBroker` where it
makes sense (``start``/``stop``/``kill``/``restart``/``close``, ``host``/``port``/``url``,
``log_text()``, context manager). :class:`EjabberdCluster` starts ``n`` nodes that share one
private ``epmd`` and one generated Erlang cookie, and joins them with ``ejabberdctl join_cluster``.

How an instance runs (Debian's ``ejabberd`` package, tested with 23.01):

- Everything lives in a private temp dir owned by the ``ejabberd`` user: ``conf/ejabberd.yml``
  (generated; ``EJABBERD_CONFIG_PATH``), ``conf/ejabberdctl.cfg`` (Erlang options: the cookie,
  loopback-only distribution, no auto-started epmd), ``spool/`` (the Mnesia dir; kept across
  restarts), ``logs/`` and ``home/``.
- ``ejabberdctl --config-dir ... --ctl-config ... --spool ... --logs ... --node
  ejabberd-<port>@localhost foreground`` runs as the ``ejabberd`` user (we are root; ejabberdctl
  refuses any other user) in a new session; the Erlang VM is its direct child.
- ``epmd -port <free port> -address 127.0.0.1`` is started by us, per broker or per cluster, and
  found by the nodes and by ``ejabberdctl`` through ``ERL_EPMD_PORT``: nothing touches a system
  epmd on 4369, and :meth:`close` kills it.
- The only listeners are the MQTT port and the Erlang distribution port, both on 127.0.0.1.
- ``mod_mqtt`` authenticates every client; the config allows anonymous login (``login_anon``), which
  accepts any username with a *non-empty* password. ejabberd 23.01 answers a CONNECT without a
  password with CONNACK 0x87 (not authorized), so clients must send :attr:`EjabberdBroker.username`
  and :attr:`EjabberdBroker.password` (any non-empty pair works).

Readiness is a real MQTT 5 CONNECT answered by a successful CONNACK (not just an open port).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from rxmqtt.testing.broker import LOOPBACK, BrokerStartError, free_port

try:  # POSIX only; importing this module must not fail elsewhere
    import pwd
except ImportError:  # pragma: no cover - Windows
    pwd = None  # type: ignore[assignment]

__all__ = [
    "EjabberdBroker",
    "EjabberdCluster",
    "EjabberdConfig",
    "EjabberdNotFoundError",
    "ejabberd_unavailable_reason",
    "find_ejabberdctl",
]

INSTALL_HINT = (
    "install it with: apt-get install -y --no-install-recommends ejabberd "
    "(Debian/Ubuntu package 'ejabberd', which brings Erlang/OTP and epmd)"
)
_BIND_FAILURE_MARKERS = ("eaddrinuse", "address already in use", "Failed to open socket")
_SEARCH_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/opt/ejabberd/bin")
_CTL_TIMEOUT = 60.0


class EjabberdNotFoundError(RuntimeError):
    """ejabberd (``ejabberdctl``, ``erl``, ``epmd``) is not installed or cannot run here."""


@dataclass(frozen=True)
class EjabberdConfig:
    """What the generated ``ejabberd.yml`` sets (``mod_mqtt`` options and logging).

    - ``session_expiry``: the broker's cap on a client's Session Expiry Interval, in seconds
      (``mod_mqtt`` option of the same name; ejabberd's default is 300). 0 disables sessions.
    - ``max_queue``: messages queued per offline session (``mod_mqtt`` ``max_queue``).
    - ``queue_type``: ``"ram"`` or ``"file"`` (``mod_mqtt`` ``queue_type``).
    - ``max_topic_aliases``: ``mod_mqtt`` ``max_topic_aliases`` (the CONNACK's Topic Alias Maximum).
    - ``username``/``password``: the credentials :meth:`EjabberdBroker.credentials` hands out.
      Anonymous login accepts any username with any non-empty password.
    - ``loglevel``: ``none``, ``emergency`` .. ``info``, ``debug`` (``debug`` logs every packet).
    - ``extra``: raw YAML appended at the top level of the file.
    """

    session_expiry: int = 3600
    max_queue: int = 5000
    queue_type: str = "ram"
    max_topic_aliases: int = 100
    username: str = "rxmqtt"
    password: str = "rxmqtt"
    loglevel: str = "info"
    extra: str = ""

    def __post_init__(self) -> None:
        if self.session_expiry < 0:
            raise ValueError("session_expiry must be >= 0 seconds")
        if self.max_queue < 1:
            raise ValueError("max_queue must be >= 1")
        if self.queue_type not in ("ram", "file"):
            raise ValueError(f"queue_type must be 'ram' or 'file', got {self.queue_type!r}")
        if not self.password:
            raise ValueError("password: ejabberd refuses an empty password; give a non-empty one")
        if not self.username or any(c in self.username for c in "@/ \n"):
            raise ValueError(f"username: not a valid JID local part: {self.username!r}")


def find_ejabberdctl() -> str:
    """Path of ``ejabberdctl`` (``$RXMQTT_EJABBERDCTL`` overrides the search)."""
    override = os.environ.get("RXMQTT_EJABBERDCTL")
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise EjabberdNotFoundError(f"RXMQTT_EJABBERDCTL={override} is not an executable")
        return override
    found = shutil.which("ejabberdctl")
    if found:
        return found
    for directory in _SEARCH_DIRS:
        candidate = Path(directory) / "ejabberdctl"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise EjabberdNotFoundError(f"ejabberdctl not found; {INSTALL_HINT}")


def _find_tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for directory in (*_SEARCH_DIRS, "/usr/lib/erlang/bin"):
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise EjabberdNotFoundError(f"{name} not found (part of Erlang/OTP); {INSTALL_HINT}")


def _install_user(ejabberdctl: str) -> str:
    """The user ``ejabberdctl`` insists on running as (its ``INSTALLUSER``)."""
    with contextlib.suppress(OSError):
        match = re.search(r"^INSTALLUSER=\"?([A-Za-z0-9_.-]*)", Path(ejabberdctl).read_text(), re.M)
        if match:
            return match.group(1)
    return "ejabberd"


def ejabberd_unavailable_reason() -> str | None:
    """Why ejabberd cannot be started here (not installed, wrong user), or None if it can."""
    try:
        ctl = find_ejabberdctl()
        _find_tool("epmd")
    except EjabberdNotFoundError as exc:
        return str(exc)
    if pwd is None or not hasattr(os, "geteuid"):
        return "the ejabberd harness needs a POSIX system (Linux)"
    user = _install_user(ctl)
    if user:
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"ejabberdctl runs as user {user!r}, which does not exist; {INSTALL_HINT}"
        me = pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() != 0 and me != user:
            return f"ejabberdctl can only be run by root or the {user!r} user (this is {me!r})"
    return None


# ------------------------------------------------------------------------------ raw MQTT probe


def _mqtt_str(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _probe_connack(host: str, port: int, username: str, password: str, timeout: float) -> int:
    """Send an MQTT 5 CONNECT, return the CONNACK reason code (raises OSError on no answer)."""
    client_id = f"rxmqtt-probe-{secrets.token_hex(4)}"
    body = (
        b"\x00\x04MQTT\x05\xc2\x00\x0a\x00"  # MQTT 5, user+password+clean start, 10 s, no props
        + _mqtt_str(client_id)
        + _mqtt_str(username)
        + _mqtt_str(password)
    )
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(b"\x10" + _varint(len(body)) + body)
        head = sock.recv(4)
        if len(head) < 4 or head[0] != 0x20:
            raise ConnectionError(f"no CONNACK (got {head!r})")
        code = head[3]
        with contextlib.suppress(OSError):
            sock.sendall(b"\xe0\x00")  # DISCONNECT, normal
        return code


# ------------------------------------------------------------------------------ processes


def _children(pid: int) -> list[int]:
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


def _vm_child(pid: int) -> int | None:
    """The Erlang VM (``beam.smp``) started by the ``ejabberdctl`` shell ``pid``, if any yet."""
    for child in _children(pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{child}/comm").read_text().strip().startswith("beam"):
                return child
    return None


class _RunAs:
    """How to start a process as the ejabberd install user, with a clean environment."""

    def __init__(self, ejabberdctl: str) -> None:
        self.user = _install_user(ejabberdctl)
        self.drop = os.geteuid() == 0 and bool(self.user) and self.user != "root"
        if self.drop:
            entry = pwd.getpwnam(self.user)
            self.uid, self.gid = entry.pw_uid, entry.pw_gid
        else:
            self.uid, self.gid = os.geteuid(), os.getegid()

    def popen_kwargs(self) -> dict[str, Any]:
        if not self.drop:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def own(self, *paths: Path) -> None:
        if not self.drop:
            return
        for path in paths:
            os.chown(path, self.uid, self.gid)


def _env(home: Path, epmd_port: int) -> dict[str, str]:
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "ERL_EPMD_PORT": str(epmd_port),
        "ERL_EPMD_ADDRESS": LOOPBACK,
    }


class _Epmd:
    """A private epmd on a free loopback port (foreground child; killed by :meth:`close`)."""

    def __init__(self, directory: Path, run_as: _RunAs) -> None:
        self._directory = directory
        self._run_as = run_as
        self._lock = threading.Lock()
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def ensure(self, timeout: float = 10.0) -> int:
        with self._lock:
            if self.proc is not None and self.proc.poll() is None and self.port is not None:
                return self.port
            epmd = _find_tool("epmd")
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
                    env=_env(self._directory, port),
                    start_new_session=True,
                    **self._run_as.popen_kwargs(),
                )
                out.close()
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
        with self._lock:
            proc, self.proc = self.proc, None
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)


class _Processes:
    """Everything the cleanup finalizer must kill and remove (never references the broker)."""

    def __init__(self, temp_dir: Path, epmd: _Epmd | None) -> None:
        self.temp_dir = temp_dir
        self.epmd = epmd  # owned: killed here; None when shared with a cluster
        self.proc: subprocess.Popen[bytes] | None = None
        self.vm_pid: int | None = None
        self.output: IO[bytes] | None = None

    def kill_vm(self) -> None:
        proc = self.proc
        if proc is None:
            return
        pids = [self.vm_pid] if self.vm_pid else []
        if proc.poll() is None:
            pids += _children(proc.pid)
            if not self.vm_pid:
                time.sleep(0.05)  # ejabberdctl may be between a helper and exec'ing erl
                pids += _children(proc.pid)
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
        self.kill_vm()
        self.proc = None
        if self.output is not None:
            self.output.close()
            self.output = None
        if self.epmd is not None:
            self.epmd.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


class EjabberdBroker:
    """One ejabberd node serving MQTT on 127.0.0.1, with its own temp dir (and epmd).

    ``start()`` picks a free port, names the Erlang node ``ejabberd-<port>@localhost``, and returns
    once an MQTT CONNECT is answered with a successful CONNACK; ``restart()`` reuses the port, the
    node name and the Mnesia spool. Use as a context manager, or call ``close()``, which kills the
    VM (and the private epmd) and removes the temp dir.
    """

    def __init__(
        self,
        config: EjabberdConfig | None = None,
        *,
        port: int | None = None,
        startup_timeout: float = 60.0,
        cookie: str | None = None,
        _epmd: _Epmd | None = None,
        **config_kwargs: Any,
    ) -> None:
        base = config or EjabberdConfig()
        self._config = replace(base, **config_kwargs) if config_kwargs else base
        self._ejabberdctl = find_ejabberdctl()
        reason = ejabberd_unavailable_reason()
        if reason is not None:
            raise EjabberdNotFoundError(reason)
        self._run_as = _RunAs(self._ejabberdctl)
        self._fixed_port = port
        self._port: int | None = port
        self._startup_timeout = startup_timeout
        self._cookie = cookie or secrets.token_hex(16)
        self._lock = threading.RLock()
        self._closed = False
        self._starts = 0
        temp_dir = Path(tempfile.mkdtemp(prefix="rxmqtt-ejabberd-"))
        self._temp_dir = temp_dir
        for sub in ("conf", "spool", "logs", "home"):
            (temp_dir / sub).mkdir()
        (temp_dir / "conf" / "inetrc").write_text("")
        self._run_as.own(
            temp_dir, *(temp_dir / s for s in ("conf", "spool", "logs", "home", "conf/inetrc"))
        )
        owned_epmd = None
        if _epmd is None:
            owned_epmd = _Epmd(temp_dir, self._run_as)
            _epmd = owned_epmd
        self._epmd = _epmd
        self._procs = _Processes(temp_dir, owned_epmd)
        self._finalizer = weakref.finalize(self, self._procs.cleanup)

    # ----------------------------------------------------------------- properties

    @property
    def config(self) -> EjabberdConfig:
        """The configuration this node runs with."""
        return self._config

    @property
    def host(self) -> str:
        """Always ``"127.0.0.1"``: the node never listens on other interfaces."""
        return LOOPBACK

    @property
    def port(self) -> int:
        """The MQTT listening port (fixed after the first successful start)."""
        if self._port is None:
            raise RuntimeError("the broker has not been started yet; call start()")
        return self._port

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<port>``."""
        return f"mqtt://{self.host}:{self.port}"

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
    def temp_dir(self) -> Path:
        """Private directory holding ``conf/``, ``spool/``, ``logs/`` and ``home/``."""
        return self._temp_dir

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

    @property
    def is_running(self) -> bool:
        """Whether the node's process is alive."""
        proc = self._procs.proc
        return proc is not None and proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit code of the last run once it has exited (137: killed)."""
        proc = self._procs.proc
        return None if proc is None else proc.poll()

    def log_text(self) -> str:
        """ejabberd's log, its error log and its console output, for diagnosing failures."""
        parts = []
        for name in ("logs/ejabberd.log", "logs/error.log", "console.out", "epmd.out"):
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
                if self._port is None or (self._starts == 0 and self._fixed_port is None):
                    self._port = free_port()
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
                        self._procs.kill_vm()
                        raise
                    self._procs.kill_vm()
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
            proc = self._procs.proc
            if proc is None:
                raise BrokerStartError("ejabberd is not running (start() was not called)")
            code = proc.poll()
            if code is not None:
                raise BrokerStartError(
                    f"ejabberd exited with code {code} during startup; log:\n{self.log_text()}"
                )
            if self._procs.vm_pid is None:
                self._procs.vm_pid = _vm_child(proc.pid)
            try:
                reason = _probe_connack(self.host, self.port, self.username, self.password, 2.0)
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
        with self._lock:
            proc = self._procs.proc
            if proc is None:
                return None
            if proc.poll() is None:
                vm = self._procs.vm_pid or _vm_child(proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    if vm is not None:
                        os.kill(vm, signal.SIGTERM)
                    else:  # still in the ejabberdctl script: nothing to shut down gracefully
                        os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self._procs.kill_vm()
            return proc.returncode

    def kill(self) -> int | None:
        """Crash the node: SIGKILL to the Erlang VM; clients see the TCP connection reset."""
        with self._lock:
            proc = self._procs.proc
            if proc is None:
                return None
            self._procs.kill_vm()
            return proc.returncode

    def restart(self, graceful: bool = True, timeout: float = 20.0) -> Self:
        """Stop (SIGTERM) or kill (SIGKILL), then start again on the same port and spool."""
        with self._lock:
            if graceful:
                self.stop(timeout)
            else:
                self.kill()
            return self.start()

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
            cwd=self._temp_dir / "spool",
            env=_env(self._temp_dir / "home", epmd_port),
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

    def close(self) -> None:
        """Kill the node (and the private epmd) and remove the temp dir. Idempotent."""
        with self._lock:
            self._closed = True
            self._finalizer()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        port = self._port if self._port is not None else "?"
        return f"<EjabberdBroker {self.host}:{port} {state} pid={self.pid}>"

    # ----------------------------------------------------------------- internals

    def _ctl_prefix(self) -> list[str]:
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
            str(self._temp_dir / "spool"),
            "--logs",
            str(self._temp_dir / "logs"),
            "--node",
            self.node,
        ]

    def _spawn(self) -> None:
        if self._procs.output is None:
            path = self._temp_dir / "console.out"
            self._procs.output = path.open("ab")
        assert self._epmd.port is not None
        self._procs.vm_pid = None
        self._procs.proc = subprocess.Popen(
            [*self._ctl_prefix(), "foreground"],
            stdin=subprocess.DEVNULL,
            stdout=self._procs.output,
            stderr=subprocess.STDOUT,
            cwd=self._temp_dir / "spool",
            env=_env(self._temp_dir / "home", self._epmd.port),
            start_new_session=True,
            **self._run_as.popen_kwargs(),
        )

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def _bind_failed(self, log_offset: int) -> bool:
        text = ""
        with contextlib.suppress(OSError), self.log_path.open("rb") as fh:
            fh.seek(log_offset)
            text = fh.read().decode(errors="replace")
        with contextlib.suppress(OSError):
            text += (self._temp_dir / "console.out").read_text(errors="replace")
        lowered = text.lower()
        return any(marker.lower() in lowered for marker in _BIND_FAILURE_MARKERS)

    def _wipe_spool(self) -> None:
        spool = self._temp_dir / "spool"
        shutil.rmtree(spool, ignore_errors=True)
        spool.mkdir()
        self._run_as.own(spool)

    def _config_text(self) -> str:
        cfg = self._config
        lines = [
            "# generated by rxmqtt.testing.EjabberdBroker",
            "hosts:",
            "  - localhost",
            f"loglevel: {cfg.loglevel}",
            "log_rotate_count: 0",
            "hide_sensitive_log_data: false",
            "certfiles: []",
            "acme:",
            "  auto: false",
            "listen:",
            "  -",
            f"    port: {self.port}",
            f'    ip: "{LOOPBACK}"',
            "    module: mod_mqtt",
            "    backlog: 1024",
            "auth_method: [anonymous]",
            "anonymous_protocol: login_anon",
            "allow_multiple_connections: true",
            "api_permissions:",
            '  "console commands":',
            "    from: [ejabberd_ctl]",
            "    who: all",
            '    what: "*"',
            "modules:",
            "  mod_mqtt:",
            f"    session_expiry: {cfg.session_expiry}",
            f"    max_queue: {cfg.max_queue}",
            f"    queue_type: {cfg.queue_type}",
            f"    max_topic_aliases: {cfg.max_topic_aliases}",
        ]
        if cfg.extra:
            lines.append(cfg.extra.rstrip("\n"))
        return "\n".join(lines) + "\n"

    def _ctl_config_text(self) -> str:
        # Sourced by ejabberdctl (a shell script); ERL_OPTIONS reach both the node and every
        # ejabberdctl client node. Distribution listens on loopback only; epmd is ours.
        options = " ".join(
            [
                "-env ERL_CRASH_DUMP_BYTES 0",
                f"-setcookie {self._cookie}",
                "-start_epmd false",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            ]
        )
        return (
            "# generated by rxmqtt.testing.EjabberdBroker\n"
            f'ERL_OPTIONS="{options}"\n'
            "EJABBERD_BYPASS_WARNINGS=true\n"
        )

    def _write_config(self) -> None:
        conf = self._temp_dir / "conf"
        (conf / "ejabberd.yml").write_text(self._config_text())
        (conf / "ejabberdctl.cfg").write_text(self._ctl_config_text())
        self._run_as.own(conf / "ejabberd.yml", conf / "ejabberdctl.cfg")


class EjabberdCluster:
    """``n`` ejabberd nodes on loopback joined into one Mnesia cluster.

    The nodes share one private epmd and one generated cookie; node 0 starts first and every
    other node runs ``ejabberdctl join_cluster <node 0>`` (which restarts ejabberd on the joining
    node). Each node serves MQTT on its own port: :attr:`endpoints` lists them for
    ``ConnectionSettings(endpoints=...)``. ``close()`` kills every node and the epmd.
    """

    def __init__(
        self,
        n: int = 2,
        config: EjabberdConfig | None = None,
        *,
        startup_timeout: float = 60.0,
        **config_kwargs: Any,
    ) -> None:
        if n < 1:
            raise ValueError("n must be >= 1")
        base = config or EjabberdConfig()
        self._config = replace(base, **config_kwargs) if config_kwargs else base
        ctl = find_ejabberdctl()
        reason = ejabberd_unavailable_reason()
        if reason is not None:
            raise EjabberdNotFoundError(reason)
        run_as = _RunAs(ctl)
        self._cookie = secrets.token_hex(16)
        self._dir = Path(tempfile.mkdtemp(prefix="rxmqtt-ejabberd-cluster-"))
        run_as.own(self._dir)
        self._epmd = _Epmd(self._dir, run_as)
        self._finalizer = weakref.finalize(self, _close_cluster_dir, self._epmd, self._dir)
        self.nodes: list[EjabberdBroker] = []
        try:
            for _ in range(n):
                self.nodes.append(
                    EjabberdBroker(
                        self._config,
                        startup_timeout=startup_timeout,
                        cookie=self._cookie,
                        _epmd=self._epmd,
                    )
                )
        except BaseException:
            self.close()
            raise

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, index: int) -> EjabberdBroker:
        return self.nodes[index]

    @property
    def endpoints(self) -> list[str]:
        """``["127.0.0.1:<port>", ...]``, node order."""
        return [node.endpoint for node in self.nodes]

    @property
    def cookie(self) -> str:
        return self._cookie

    def start(self) -> Self:
        """Start every node (in parallel) and join nodes 1.. to node 0; returns once all serve
        MQTT and list each other as cluster members."""
        errors: list[BaseException] = []

        def start_one(node: EjabberdBroker) -> None:
            try:
                node.start()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start_one, args=(node,)) for node in self.nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self.join(node, first)
        for node in self.nodes:
            node.wait_ready()
        return self

    def join(self, node: EjabberdBroker, to: EjabberdBroker) -> None:
        """``ejabberdctl --node <node> join_cluster <to>``; waits until both list each other."""
        node.ctl("join_cluster", to.node)
        deadline = time.monotonic() + 30
        while True:
            members = self.list_cluster(node)
            if to.node in members and node.node in members:
                return
            if time.monotonic() > deadline:
                raise BrokerStartError(
                    f"{node.node} did not join {to.node}: list_cluster says {members}"
                )
            time.sleep(0.1)

    def list_cluster(self, via: EjabberdBroker | None = None) -> list[str]:
        """Node names in the cluster, as ``ejabberdctl list_cluster`` on ``via`` reports them."""
        node = via or next((n for n in self.nodes if n.is_running), self.nodes[0])
        return [name.strip("'\"") for name in node.ctl("list_cluster").split()]

    def close(self) -> None:
        """Kill every node and the shared epmd; remove the temp dirs. Idempotent."""
        for node in self.nodes:
            node.close()
        self._finalizer()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<EjabberdCluster {self.endpoints if self.nodes else []}>"


def _close_cluster_dir(epmd: _Epmd, directory: Path) -> None:
    epmd.close()
    shutil.rmtree(directory, ignore_errors=True)
