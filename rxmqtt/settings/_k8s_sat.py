"""``K8sSatAuthenticator``: Azure IoT Operations' ``K8S-SAT`` enhanced authentication, with a
Kubernetes service-account token file that is re-read on every exchange and watched for
rotation (the connection re-authenticates with the new token, keeping the link)."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import reactivex
from reactivex import Observable
from reactivex import operators as ops
from reactivex.abc import SchedulerBase

from .._checks import check_path
from ._authenticator import Authenticator
from ._secrets import _read_secret_file

__all__ = ["K8S_SAT_AUTH_METHOD", "K8sSatAuthenticator"]

log = logging.getLogger("rxmqtt.auth")

K8S_SAT_AUTH_METHOD = "K8S-SAT"
"""MQTT 5 enhanced-authentication method of Azure IoT Operations' Kubernetes token auth."""

DEFAULT_POLL_INTERVAL = 5.0
"""Seconds between checks of the token file (one ``stat()``; the file is read only when its
identity, size or modification time changed)."""

_Fingerprint = tuple[int, int, int, int]
"""(device, inode, size, mtime in ns): what changes when a token file is rewritten or, as
Kubernetes does it, swapped in through a symbolic link."""


def _fingerprint(path: Path) -> _Fingerprint | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class K8sSatAuthenticator(Authenticator):
    """``K8S-SAT``: the token in ``token_file`` is the Authentication Data of CONNECT, of every
    re-authentication and of the answer to any challenge (the server normally sends none).

    The file is read afresh for each exchange (one trailing newline removed). Every
    ``poll_interval`` seconds, on the connection's scheduler, the file is checked; once it
    holds a token other than the one last sent, the connection re-authenticates with it
    without dropping the link (when disconnected, the next CONNECT carries it anyway). A file
    that is missing, unreadable or empty at a check is logged and checked again at the next.
    ``argument`` names the setting in errors (``"AIO_SAT_FILE"`` from ``from_env``).
    """

    method = K8S_SAT_AUTH_METHOD

    def __init__(
        self,
        token_file: str | os.PathLike[str],
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        argument: str = "token_file",
    ) -> None:
        self.token_file = check_path(argument, token_file)
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float):
            raise TypeError(f"poll_interval: must be a number, got {type(poll_interval).__name__}")
        if not math.isfinite(poll_interval) or poll_interval <= 0:
            raise ValueError(f"poll_interval: must be > 0 seconds, got {poll_interval}")
        self.poll_interval = float(poll_interval)
        self._argument = argument
        self._sent: bytes | None = None
        """The token of the last exchange (what the server knows us by)."""
        self._seen = _fingerprint(self.token_file)

    def initial_data(self) -> bytes:
        """The token, read now (an ``OSError`` naming the setting and the path if it cannot)."""
        seen = _fingerprint(self.token_file)
        token = _read_secret_file(self.token_file, self._argument)
        self._seen, self._sent = seen, token
        return token

    def on_challenge(self, data: bytes | None) -> bytes:
        log.warning(
            "%s: the server sent AUTH Continue authentication; answering with the token again",
            self.method,
        )
        return self.initial_data()

    def reauthentication_requests(self, scheduler: SchedulerBase) -> Observable[Any]:
        """An item each time a check finds a new token in the file."""
        return reactivex.interval(self.poll_interval, scheduler=scheduler).pipe(
            ops.filter(lambda _: self._rotated())
        )

    def _rotated(self) -> bool:
        seen = _fingerprint(self.token_file)
        if seen is None or seen == self._seen:
            return False
        try:
            token = _read_secret_file(self.token_file, self._argument)
        except OSError as exc:
            log.warning(
                "%s changed but cannot be read (checked again later): %s", self._argument, exc
            )
            return False
        if not token:
            log.warning("%s changed but is empty (checked again later)", self._argument)
            return False
        self._seen = seen
        return token != self._sent

    def __repr__(self) -> str:
        return f"K8sSatAuthenticator(token_file={str(self.token_file)!r})"
