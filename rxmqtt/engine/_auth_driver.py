"""Drives one connection's enhanced authentication: feeds the pure exchange
(``_auth_exchange``) what arrives, calls the application's :class:`Authenticator`, sends what
the exchange says, times out a re-authentication the server leaves unanswered, and settles each
``reauthenticate()`` outcome."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from .._outcome import Outcome, settle_error, settle_value
from ..errors import ReauthenticationError
from ..lifecycle import Disconnect
from ..settings import Authenticator
from ._auth_exchange import (
    Abort,
    Action,
    Answered,
    Authenticated,
    AuthReceived,
    Challenge,
    ConnackAccepted,
    ConnectSent,
    Event,
    Exchange,
    GaveUp,
    LinkEnded,
    ReauthInterrupted,
    ReauthStarted,
    SendAuth,
    Stage,
    step,
)

log = logging.getLogger("rxmqtt.engine")

SendAuthPacket = Callable[[int, str, "bytes | None"], None]
"""(reason code, method, data): queue an AUTH packet."""

AbortLink = Callable[[int, str], None]
"""(reason code, reason): send DISCONNECT with the code and end the link (reported as the
client's doing)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the client ends the connection over an AUTH it received."""

    reason_code: int
    reason: str


class AuthDriver:
    """One connection's enhanced authentication (a no-op without an authenticator)."""

    def __init__(
        self,
        authenticator: Authenticator | None,
        *,
        send: SendAuthPacket,
        abort: AbortLink,
        call_later: Callable[..., asyncio.TimerHandle],
        timeout: float,
    ) -> None:
        self.authenticator = authenticator
        self._send = send
        self._abort = abort
        self._call_later = call_later
        self._timeout = timeout
        self._state = Exchange()
        self._current: Outcome[int] | None = None
        """The re-authentication under way."""
        self._next: Outcome[int] | None = None
        """Asked for while one was under way: starts when that one succeeds."""
        self._timer: asyncio.TimerHandle | None = None

    @property
    def stage(self) -> Stage:
        return self._state.stage

    # ------------------------------------------------------------------ CONNECT

    def connect_auth(self) -> tuple[str, bytes | None] | None:
        """Method and data for this attempt's CONNECT (the authenticator reads them now; it
        may raise, failing the attempt); ``None`` without enhanced authentication."""
        authenticator = self.authenticator
        if authenticator is None:
            return None
        return authenticator.method, authenticator.initial_data()

    def connect_sent(self) -> None:
        method = None if self.authenticator is None else self.authenticator.method
        self._feed(ConnectSent(method))

    def connack_accepted(self) -> None:
        self._feed(ConnackAccepted())

    def link_ended(self, disconnect: Disconnect | None) -> None:
        """The link is gone (``None``: the owner closed it): an exchange under way failed."""
        self._cancel_timer()
        for action in self._apply(LinkEnded()):
            if isinstance(action, ReauthInterrupted):
                why = "the connection was closed" if disconnect is None else str(disconnect)
                self._fail_waiters(ReauthenticationError(why, disconnect))

    # ------------------------------------------------------------------ incoming AUTH

    def received(self, auth: AuthReceived) -> Refusal | None:
        """An AUTH from the server: answered here, or a refusal for the adapter to act on."""
        return self._feed(auth)

    # ------------------------------------------------------------------ re-authentication

    def reauthenticate(self) -> Outcome[int]:
        """Start a re-authentication (or join the queue behind the one under way): resolves
        with its Continue authentication rounds on AUTH Success."""
        outcome: Outcome[int] = Outcome()
        stage = self._state.stage
        if self.authenticator is None:
            settle_error(outcome, ReauthenticationError("no authentication method is set"))
        elif stage is Stage.REAUTHENTICATING:
            if self._next is None:
                self._next = outcome
            return self._next
        elif stage is not Stage.AUTHENTICATED:
            settle_error(
                outcome,
                ReauthenticationError(
                    "not connected (the next CONNECT authenticates with fresh data)"
                ),
            )
        else:
            self._start(outcome)
        return outcome

    def _start(self, outcome: Outcome[int]) -> None:
        assert self.authenticator is not None
        try:
            data = self.authenticator.initial_data()
        except Exception as exc:
            settle_error(outcome, ReauthenticationError(f"the authenticator failed: {exc}"))
            return
        self._current = outcome
        self._feed(ReauthStarted(data))
        self._timer = self._call_later(self._timeout, self._timed_out, outcome)

    def _timed_out(self, outcome: Outcome[int]) -> None:
        self._timer = None
        if self._current is outcome and self._state.stage is Stage.REAUTHENTICATING:
            refusal = self._feed(
                GaveUp(f"the server did not finish the re-authentication within {self._timeout}s")
            )
            if refusal is not None:
                self._abort(refusal.reason_code, refusal.reason)

    # ------------------------------------------------------------------ plumbing

    def _apply(self, event: Event) -> tuple[Action, ...]:
        self._state, actions = step(self._state, event)
        return actions

    def _feed(self, event: Event) -> Refusal | None:
        """Feed ``event`` and carry out what follows; an ``Abort`` comes back as a refusal."""
        pending = list(self._apply(event))
        while pending:
            action = pending.pop(0)
            if isinstance(action, SendAuth):
                self._send(action.reason_code, action.method, action.data)
            elif isinstance(action, Challenge):
                pending += self._answer(action)
            elif isinstance(action, Authenticated):
                self._succeeded(action)
            elif isinstance(action, Abort):
                return Refusal(action.reason_code, action.reason)
        return None

    def _answer(self, challenge: Challenge) -> tuple[Action, ...]:
        assert self.authenticator is not None
        try:
            data = self.authenticator.on_challenge(challenge.data)
        except Exception as exc:
            return self._apply(GaveUp(f"the authenticator could not answer the challenge: {exc}"))
        if data is not None and not isinstance(data, bytes | bytearray):
            return self._apply(
                GaveUp(
                    "the authenticator answered the challenge with "
                    f"{type(data).__name__}, expected bytes or None"
                )
            )
        return self._apply(Answered(None if data is None else bytes(data)))

    def _succeeded(self, done: Authenticated) -> None:
        if not done.reauthentication:
            return
        self._cancel_timer()
        current, self._current = self._current, None
        if current is not None:
            settle_value(current, done.rounds)
        queued, self._next = self._next, None
        if queued is not None:
            self._start(queued)

    def _fail_waiters(self, error: ReauthenticationError) -> None:
        for outcome in (self._current, self._next):
            if outcome is not None:
                settle_error(outcome, error)
        self._current = self._next = None

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
