"""What the paho adapter tells the engine: every paho callback and every discovery inside paho's
packet handling arrives as one of these frozen events, at once (nothing is parked on the paho
object for later). Events flow one way: socket -> paho adapter -> engine -> connection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..broker_limits import BrokerLimits
from ..lifecycle import DisconnectSource
from ..message import Message

ReasonCodes = tuple[tuple[int, str], ...]
"""(code, name) per topic filter of a SUBACK or UNSUBACK."""


@dataclass(frozen=True, slots=True)
class ConnackReceived:
    """A CONNACK arrived (paho re-sends the session's packets after it: ``ConnackHandled``)."""

    reason_code: int
    reason: str
    session_present: bool
    limits: BrokerLimits
    server_reference: str | None
    orphans: tuple[int, ...]
    """QoS 2 packet ids whose PUBREL was owed in a session the broker no longer has (CONNACK
    session_present 0): the adapter dropped them, so the broker may not have the message."""

    @property
    def accepted(self) -> bool:
        """The broker accepted the connection (reason code below 0x80)."""
        return self.reason_code < 0x80


@dataclass(frozen=True, slots=True)
class ConnackHandled:
    """paho has handled a CONNACK and re-sent the session's unacknowledged packets: from now on
    a new PUBLISH cannot overtake them [MQTT-4.6.0-1]. (``ConnackReceived`` came before.)"""


@dataclass(frozen=True, slots=True)
class LinkClosed:
    """paho found the link gone (its ``on_disconnect``): the broker's DISCONNECT
    (``from_server``), or paho's own verdict on a failed read or write."""

    from_server: bool
    reason_code: int
    reason: str
    reason_string: str | None
    """The DISCONNECT's Reason String property, if the broker gave one."""
    server_reference: str | None


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A PUBLISH arrived (any QoS; a QoS 2 one once, paho then completes its handshake)."""

    message: Message


@dataclass(frozen=True, slots=True)
class PublishCompleted:
    """paho is done with one of our publishes: QoS 0 written, QoS 1 PUBACK, QoS 2 PUBCOMP (or
    a PUBREC refusing it)."""

    mid: int
    qos: int
    """The publish's QoS (0 once paho no longer holds it)."""
    reason_code: int
    """The PUBACK's or PUBCOMP's code (0 for a QoS 0 publish written)."""
    reason: str


@dataclass(frozen=True, slots=True)
class PublishesAcknowledged:
    """PUBACKs that arrived together (one read), in order: told at once, so the publisher
    refills the in-flight window once for them all."""

    acks: tuple[PublishCompleted, ...]


@dataclass(frozen=True, slots=True)
class PublishesWritten:
    """QoS 0 publishes written to the socket, in order (one event per ``send()``, which joins
    many under load)."""

    mids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PubrecReceived:
    """A PUBREC arrived with a reason code (paho keeps only whether it failed)."""

    mid: int
    """The QoS 2 publish's packet id."""
    reason_code: int
    reason: str


@dataclass(frozen=True, slots=True)
class FilterAck:
    """An acknowledgement with one reason code per topic filter of the packet ``mid``."""

    mid: int
    reason_codes: ReasonCodes


class SubackReceived(FilterAck):
    """A SUBACK arrived."""

    __slots__ = ()


class UnsubackReceived(FilterAck):
    """An UNSUBACK arrived."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class PacketRefused:
    """The adapter refused an incoming packet and paho is dropping the link because of it."""

    reason_code: int
    """What the adapter found wrong, as MQTT 5 names it (0x81 Malformed Packet, ...)."""
    reason: str
    source: DisconnectSource


@dataclass(frozen=True, slots=True)
class SocketFailed:
    """The socket's recv() or send() raised (paho logs it and reports only "connection lost")."""

    error: OSError


AdapterEvent = (
    MessageReceived
    | PublishCompleted
    | PublishesAcknowledged
    | PublishesWritten
    | PubrecReceived
    | SubackReceived
    | UnsubackReceived
    | ConnackReceived
    | ConnackHandled
    | LinkClosed
    | PacketRefused
    | SocketFailed
)
"""Everything the adapter tells the engine."""

EventSink = Callable[[AdapterEvent], None]
