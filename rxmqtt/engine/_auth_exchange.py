"""MQTT 5 enhanced authentication as a pure state machine (sans I/O, like h11): events in,
actions out, frozen values, no clock and no socket. The engine feeds it what arrives and
does what it says (``_auth_driver``). Authentication Data may be a token: no repr shows it.

The rules it keeps (MQTT 5 sections 3.15 and 4.12):

- A client that sent an Authentication Method in CONNECT may get AUTH Continue
  authentication (0x18) rounds before CONNACK; it answers each with AUTH 0x18.
- After CONNACK it may start a re-authentication, AUTH Re-authenticate (0x19) with the same
  method; the server answers 0x18 rounds and finally AUTH Success (0x00), or DISCONNECT.
  Other traffic goes on meanwhile under the previous authentication.
- Every AUTH carries the connection's method: another method is 0x8C Bad authentication
  method. AUTH without a method in CONNECT, a server's 0x19, a 0x18 or 0x00 with no exchange
  under way, or a 0x00 instead of CONNACK are each a 0x82 Protocol Error.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

CONTINUE = 0x18
"""AUTH Continue authentication."""
REAUTHENTICATE = 0x19
"""AUTH Re-authenticate (only a client sends it)."""
SUCCESS = 0x00
"""AUTH Success (a re-authentication's end; a CONNECT's exchange ends with CONNACK)."""
PROTOCOL_ERROR = 0x82
BAD_AUTHENTICATION_METHOD = 0x8C
UNSPECIFIED_ERROR = 0x80

_AUTH_CODE_NAMES = {
    SUCCESS: "Success",
    CONTINUE: "Continue authentication",
    REAUTHENTICATE: "Re-authenticate",
}


class Stage(enum.Enum):
    """Where the connection's authentication is."""

    IDLE = "idle"
    """No link, or a link without enhanced authentication."""
    CONNECTING = "connecting"
    """CONNECT carried the method; AUTH 0x18 rounds or CONNACK come next."""
    AUTHENTICATED = "authenticated"
    """CONNACK (or the last re-authentication) accepted; nothing under way."""
    REAUTHENTICATING = "reauthenticating"
    """AUTH 0x19 sent; AUTH 0x18 rounds, AUTH 0x00 or DISCONNECT come next."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """The state: the method of this connection (``None``: no enhanced authentication), the
    stage, and how many Continue authentication rounds the current exchange has had."""

    method: str | None = None
    stage: Stage = Stage.IDLE
    rounds: int = 0
    answering: bool = False
    """A challenge was handed to the authenticator and its answer is owed."""

    @property
    def exchanging(self) -> bool:
        """An exchange (CONNECT's or a re-authentication) is under way."""
        return self.stage in (Stage.CONNECTING, Stage.REAUTHENTICATING)


# ------------------------------------------------------------------------------ events in


@dataclass(frozen=True, slots=True)
class ConnectSent:
    """A CONNECT went out with ``method`` (``None``: without enhanced authentication)."""

    method: str | None


@dataclass(frozen=True, slots=True)
class AuthReceived:
    """The server sent AUTH."""

    reason_code: int
    method: str | None = None
    data: bytes | None = field(default=None, repr=False)
    reason_string: str | None = None


@dataclass(frozen=True, slots=True)
class Answered:
    """The authenticator's answer to the challenge (``Challenge``) handed to it."""

    data: bytes | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class ConnackAccepted:
    """CONNACK with Success arrived."""


@dataclass(frozen=True, slots=True)
class ReauthStarted:
    """The client starts a re-authentication with ``data`` (the authenticator's initial data)."""

    data: bytes | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class GaveUp:
    """The client gives up on the exchange under way (its authenticator failed, or the server
    left a re-authentication unanswered too long)."""

    reason: str


@dataclass(frozen=True, slots=True)
class LinkEnded:
    """The network connection is gone (whoever ended it)."""


Event = ConnectSent | AuthReceived | Answered | ConnackAccepted | ReauthStarted | GaveUp | LinkEnded


# ------------------------------------------------------------------------------ actions out


@dataclass(frozen=True, slots=True)
class SendAuth:
    """Send AUTH with this reason code, the method and the data."""

    reason_code: int
    method: str
    data: bytes | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class Challenge:
    """Ask the authenticator to answer the server's ``data`` (then feed ``Answered``)."""

    data: bytes | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The exchange succeeded: ``reauthentication`` tells a re-authentication from CONNECT's;
    ``rounds`` is how many Continue authentication rounds it took."""

    reauthentication: bool
    rounds: int


@dataclass(frozen=True, slots=True)
class Abort:
    """End the connection: send DISCONNECT with ``reason_code`` and close (the client found
    the fault, or gave up)."""

    reason_code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ReauthInterrupted:
    """A re-authentication was under way when the link ended: it did not succeed."""


Action = SendAuth | Challenge | Authenticated | Abort | ReauthInterrupted


class ExchangeError(RuntimeError):
    """The caller fed an event the state does not allow (a bug in the caller, not the peer)."""


def _auth_name(code: int) -> str:
    return _AUTH_CODE_NAMES.get(code, f"reason code 0x{code:02X}")


def step(state: Exchange, event: Event) -> tuple[Exchange, tuple[Action, ...]]:
    """The state after ``event`` and what to do about it."""
    match event:
        case ConnectSent(method=method):
            stage = Stage.CONNECTING if method is not None else Stage.IDLE
            return Exchange(method, stage), ()
        case AuthReceived():
            return _received(state, event)
        case Answered(data=data):
            if not state.answering or state.method is None:
                raise ExchangeError("an answer with no challenge owed")
            return replace(state, answering=False), (SendAuth(CONTINUE, state.method, data),)
        case ConnackAccepted():
            if state.stage is not Stage.CONNECTING:
                return state, ()
            done = Authenticated(reauthentication=False, rounds=state.rounds)
            return replace(state, stage=Stage.AUTHENTICATED, answering=False), (done,)
        case ReauthStarted(data=data):
            if state.stage is not Stage.AUTHENTICATED or state.method is None:
                raise ExchangeError(f"cannot re-authenticate while {state.stage.value}")
            started = replace(state, stage=Stage.REAUTHENTICATING, rounds=0, answering=False)
            return started, (SendAuth(REAUTHENTICATE, state.method, data),)
        case GaveUp(reason=reason):
            if not state.exchanging:
                return state, ()
            return _failed(state, UNSPECIFIED_ERROR, reason)
        case LinkEnded():
            interrupted = state.stage is Stage.REAUTHENTICATING
            idle = Exchange(state.method)
            return idle, ((ReauthInterrupted(),) if interrupted else ())
    raise ExchangeError(f"unknown event {event!r}")  # pragma: no cover - exhaustive above


def _received(state: Exchange, auth: AuthReceived) -> tuple[Exchange, tuple[Action, ...]]:
    code = auth.reason_code
    said = f" ({auth.reason_string})" if auth.reason_string else ""
    if state.method is None:
        return _failed(
            state,
            PROTOCOL_ERROR,
            "Protocol Error: the server sent AUTH, but this client's CONNECT had no "
            f"Authentication Method{said}",
        )
    if code not in _AUTH_CODE_NAMES:
        return _failed(state, PROTOCOL_ERROR, f"Protocol Error: AUTH with {_auth_name(code)}")
    if code == REAUTHENTICATE:
        return _failed(
            state,
            PROTOCOL_ERROR,
            "Protocol Error: the server sent AUTH Re-authenticate, which only a client "
            f"sends{said}",
        )
    if auth.method is not None and auth.method != state.method:
        return _failed(
            state,
            BAD_AUTHENTICATION_METHOD,
            f"Bad authentication method: the server's AUTH names {auth.method!r}, this "
            f"connection authenticates with {state.method!r}",
        )
    if code == CONTINUE:
        if not state.exchanging:
            return _failed(
                state,
                PROTOCOL_ERROR,
                "Protocol Error: AUTH Continue authentication with no authentication under way",
            )
        if auth.method is None:
            return _failed(
                state,
                PROTOCOL_ERROR,
                "Protocol Error: AUTH Continue authentication without an Authentication Method",
            )
        challenged = replace(state, rounds=state.rounds + 1, answering=True)
        return challenged, (Challenge(auth.data),)
    # SUCCESS
    if state.stage is Stage.CONNECTING:
        return _failed(
            state,
            PROTOCOL_ERROR,
            "Protocol Error: AUTH Success during CONNECT (the server ends that exchange with "
            "CONNACK)",
        )
    if state.stage is not Stage.REAUTHENTICATING:
        return _failed(
            state,
            PROTOCOL_ERROR,
            "Protocol Error: AUTH Success with no re-authentication under way",
        )
    done = Authenticated(reauthentication=True, rounds=state.rounds)
    return replace(state, stage=Stage.AUTHENTICATED, answering=False), (done,)


def _failed(state: Exchange, code: int, reason: str) -> tuple[Exchange, tuple[Action, ...]]:
    """Abort; the link ending (``LinkEnded``) brings the state back to idle."""
    return replace(state, answering=False), (Abort(code, reason),)
