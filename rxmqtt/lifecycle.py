"""What happens to a connection, as values: lifecycle events, disconnects and the derived state.

``Connection.lifecycle`` emits the events below in order; ``connection_state`` is a ``scan`` of
them through :func:`next_state` and ``disconnects`` a projection of them, so there is exactly
one source of truth.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ConnectionState(enum.Enum):
    """Where the connection is. Derived from ``lifecycle``; never stored separately."""

    DISCONNECTED = "disconnected"
    """Not started yet."""
    CONNECTING = "connecting"
    """The first attempt (or the first after FAILED) is in progress."""
    CONNECTED = "connected"
    """CONNACK accepted; publishes go on the wire."""
    RECONNECTING = "reconnecting"
    """Lost or refused; backing off or attempting again."""
    CLOSED = "closed"
    """Closed by the application."""
    FAILED = "failed"
    """Gave up: a fatal reason code or the attempts ran out."""


class DisconnectSource(enum.Enum):
    """Who ended (or refused) the connection."""

    SERVER = "server"
    """The broker sent DISCONNECT or refused the CONNACK."""
    NETWORK = "network"
    """The socket closed, was reset, or the broker was unreachable (including TLS failures)."""
    KEEPALIVE = "keepalive"
    """No PINGRESP (or any traffic) in time: the link is dead though the socket is open."""
    CLIENT = "client"
    """This client detected a protocol error or an acknowledgement timeout."""
    USER = "user"
    """The application closed the connection."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Why a connection ended or an attempt was refused.

    ``reason_code`` is the MQTT 5 reason code, or ``None`` when there is none to give: an MQTT
    3.1.1 connection (``protocol_version=4``) carries reason codes only in a refused CONNACK,
    whose return code is given as its MQTT 5 equivalent (see
    :data:`rxmqtt.policies.V311_CONNACK_CODES`); every other 3.1.1 end has ``None``, and
    ``source`` and ``reason`` say what happened.
    """

    reason_code: int | None
    reason: str
    source: DisconnectSource
    fatal: bool = False
    session_present: bool | None = None
    at: float = 0.0
    """``time.monotonic()`` (the loop's clock) when it was observed."""
    server_reference: str | None = None
    """The Server Reference the broker sent with 0x9C Use another server / 0x9D Server moved:
    where the connection goes next (see the reason-code table)."""

    @property
    def code_text(self) -> str:
        """``"0x86"``, or ``"no reason code"`` when the protocol gave none (MQTT 3.1.1)."""
        return "no reason code" if self.reason_code is None else f"0x{self.reason_code:02X}"

    def __str__(self) -> str:
        fatal = ", fatal" if self.fatal else ""
        moved = f" (server reference {self.server_reference!r})" if self.server_reference else ""
        code = "" if self.reason_code is None else f"{self.code_text} "
        return f"{self.source.value}: {code}{self.reason}{moved}{fatal}"


@dataclass(frozen=True, slots=True)
class Connecting:
    """An attempt started. ``attempt`` counts from 1 and restarts after a stable connection."""

    attempt: int
    endpoint: str

    def __str__(self) -> str:
        return f"connecting to {self.endpoint} (attempt {self.attempt})"


@dataclass(frozen=True, slots=True)
class Connected:
    """The broker accepted the connection."""

    session_present: bool
    endpoint: str

    def __str__(self) -> str:
        return f"connected to {self.endpoint} (session present: {self.session_present})"


@dataclass(frozen=True, slots=True)
class ConnectFailed:
    """An attempt failed before CONNACK success; ``retry_in`` is the wait before the next one
    (``None`` when the policy gives up). ``reason_code``: as :attr:`Disconnect.reason_code`."""

    reason_code: int | None
    reason: str
    attempt: int
    retry_in: float | None
    disconnect: Disconnect

    def __str__(self) -> str:
        return f"attempt {self.attempt} failed: {self.disconnect}{_retry_text(self.retry_in)}"


@dataclass(frozen=True, slots=True)
class Disconnected:
    """An established connection ended; ``retry_in`` is the wait before reconnecting
    (``None`` when the policy gives up or the application closed it)."""

    disconnect: Disconnect
    retry_in: float | None = None

    def __str__(self) -> str:
        return f"disconnected: {self.disconnect}{_retry_text(self.retry_in)}"


@dataclass(frozen=True, slots=True)
class SessionLost:
    """A reconnect found no session on the broker (``session_present=False``): subscriptions
    are being restored by the connection."""

    def __str__(self) -> str:
        return "session lost: the broker kept no session; re-subscribing"


@dataclass(frozen=True, slots=True)
class Closed:
    """The application closed the connection; every stream completes after this."""

    def __str__(self) -> str:
        return "closed"


@dataclass(frozen=True, slots=True)
class GaveUp:
    """The reconnect policy stopped for good (fatal code or attempts exhausted)."""

    reason: str
    disconnect: Disconnect | None = None

    def __str__(self) -> str:
        return f"gave up: {self.reason}"


LifecycleEvent = (
    Connecting | Connected | ConnectFailed | Disconnected | SessionLost | Closed | GaveUp
)


def _retry_text(retry_in: float | None) -> str:
    return "" if retry_in is None else f"; retrying in {retry_in:.2f}s"


def next_state(state: ConnectionState, event: LifecycleEvent) -> ConnectionState:
    """The state after ``event``: the reducer ``connection_state`` scans ``lifecycle`` with."""
    if state in (ConnectionState.CLOSED, ConnectionState.FAILED) and not isinstance(
        event, Connecting
    ):
        return ConnectionState.CLOSED if isinstance(event, Closed) else state
    match event:
        case Connecting():
            if state in (
                ConnectionState.DISCONNECTED,
                ConnectionState.CLOSED,
                ConnectionState.FAILED,
                ConnectionState.CONNECTING,
            ):
                return ConnectionState.CONNECTING
            return ConnectionState.RECONNECTING
        case Connected():
            return ConnectionState.CONNECTED
        case Disconnected(disconnect=Disconnect(source=DisconnectSource.USER)):
            return state  # the Closed event that follows decides
        case ConnectFailed() | Disconnected():
            return ConnectionState.RECONNECTING
        case GaveUp():
            return ConnectionState.FAILED
        case Closed():
            return ConnectionState.CLOSED
        case SessionLost():
            return state
    return state
