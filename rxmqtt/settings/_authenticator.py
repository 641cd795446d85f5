"""``Authenticator``: what MQTT 5 enhanced authentication asks of the application."""

from __future__ import annotations

from typing import Any

import reactivex
from reactivex import Observable
from reactivex.abc import SchedulerBase

from ..errors import AuthenticationError

__all__ = ["Authenticator"]


class Authenticator:
    """One MQTT 5 enhanced-authentication method: subclass it and override what it needs.

    The connection sends ``method`` and :meth:`initial_data` in CONNECT, answers each AUTH
    Continue authentication (0x18) of the server with :meth:`on_challenge`, and starts a
    re-authentication (AUTH 0x19 with :meth:`initial_data` read again) on
    ``Connection.reauthenticate()`` and on every item of :meth:`reauthentication_requests`.
    Every method is called on the connection's event loop, so keep them quick.
    """

    method: str = ""
    """The Authentication Method (e.g. ``"K8S-SAT"``, ``"SCRAM-SHA-256"``): the same for the
    connection's whole life, as MQTT 5 requires of a re-authentication."""

    def initial_data(self) -> bytes | None:
        """The Authentication Data that starts an exchange (CONNECT, or AUTH Re-authenticate),
        read afresh for each one so a rotated token goes out. ``None`` sends none. An exception
        fails the attempt (or the re-authentication) with its message."""
        return None

    def on_challenge(self, data: bytes | None) -> bytes | None:
        """The answer to the server's AUTH Continue authentication carrying ``data``: the
        Authentication Data of the client's AUTH Continue authentication. The default has no
        answer: it raises, and the client ends the exchange (DISCONNECT 0x80)."""
        raise AuthenticationError(
            f"{type(self).__name__} ({self.method}) does not answer challenges, but the server "
            "sent AUTH Continue authentication"
        )

    def reauthentication_requests(self, scheduler: SchedulerBase) -> Observable[Any]:
        """Each item asks the connection to re-authenticate (only while it is connected: the
        next CONNECT authenticates afresh anyway). ``scheduler`` is the connection's (a
        ``TestScheduler`` in tests): timers belong on it. The default never asks."""
        return reactivex.never()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(method={self.method!r})"


class DataAuthenticator(Authenticator):
    """``auth_method`` with ``auth_data`` (bytes or a provider called per exchange): a method
    whose server accepts the data as it is, and answers a challenge with the same data again
    (as Azure IoT Operations' SDKs do for ``K8S-SAT``)."""

    def __init__(self, method: str, data: Any) -> None:
        self.method = method
        self._data = data

    def initial_data(self) -> bytes | None:
        data = self._data
        if data is None:
            return None
        value = data() if callable(data) else data
        if not isinstance(value, bytes | bytearray):
            raise TypeError(f"auth_data: provider returned {type(value).__name__}, expected bytes")
        return bytes(value)

    def on_challenge(self, data: bytes | None) -> bytes | None:
        return self.initial_data()
