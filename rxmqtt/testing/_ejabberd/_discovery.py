"""Finding ejabberd's tools and telling whether ejabberd can run here at all.

The harness needs ``ejabberdctl``, ``epmd`` (Erlang/OTP) and the user ``ejabberdctl`` insists on
running as; :func:`ejabberd_unavailable_reason` turns anything missing into one sentence that a
test can skip with.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

try:  # POSIX only; importing this module must not fail elsewhere
    import pwd
except ImportError:  # pragma: no cover - Windows
    pwd = None  # type: ignore[assignment]

INSTALL_HINT = (
    "install it with: apt-get install -y --no-install-recommends ejabberd "
    "(Debian/Ubuntu package 'ejabberd', which brings Erlang/OTP and epmd)"
)
_SEARCH_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/opt/ejabberd/bin")


class EjabberdNotFoundError(RuntimeError):
    """ejabberd (``ejabberdctl``, ``erl``, ``epmd``) is not installed or cannot run here."""


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


def find_tool(name: str) -> str:
    """Path of an Erlang/OTP executable such as ``epmd`` (also looked for in Erlang's bin dir)."""
    found = shutil.which(name)
    if found:
        return found
    for directory in (*_SEARCH_DIRS, "/usr/lib/erlang/bin"):
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise EjabberdNotFoundError(f"{name} not found (part of Erlang/OTP); {INSTALL_HINT}")


def install_user(ejabberdctl: str) -> str:
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
        find_tool("epmd")
    except EjabberdNotFoundError as exc:
        return str(exc)
    if pwd is None or not hasattr(os, "geteuid"):
        return "the ejabberd harness needs a POSIX system (Linux)"
    user = install_user(ctl)
    if user:
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"ejabberdctl runs as user {user!r}, which does not exist; {INSTALL_HINT}"
        me = pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() != 0 and me != user:
            return f"ejabberdctl can only be run by root or the {user!r} user (this is {me!r})"
    return None
