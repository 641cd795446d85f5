"""What the paho adapter learns inside paho's packet handling and the engine needs: each one is
an event handed to the engine at once (nothing is parked on the paho object for later)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..lifecycle import DisconnectSource


@dataclass(frozen=True, slots=True)
class PubrecReceived:
    """A PUBREC arrived with a reason code (paho keeps only whether it failed)."""

    mid: int
    reason_code: int
    reason: str


@dataclass(frozen=True, slots=True)
class PacketRefused:
    """The adapter refused an incoming packet and paho is dropping the link because of it."""

    reason_code: int
    reason: str
    source: DisconnectSource


@dataclass(frozen=True, slots=True)
class SocketFailed:
    """The socket's recv() or send() raised (paho logs it and reports only "connection lost")."""

    error: OSError


@dataclass(frozen=True, slots=True)
class ConnackHandled:
    """paho has handled a CONNACK and re-sent the session's unacknowledged packets: from now on
    a new PUBLISH cannot overtake them [MQTT-4.6.0-1]. (paho calls ``on_connect`` before.)"""


AdapterEvent = PubrecReceived | PacketRefused | SocketFailed | ConnackHandled
"""Everything the adapter tells the engine besides paho's own callbacks."""

EventSink = Callable[[AdapterEvent], None]
