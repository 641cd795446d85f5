"""``Delivery``: a received message with the means to acknowledge it once processed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .message import Message


def _nothing_to_ack() -> None:
    """QoS 0, or the connection acknowledged the message already."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """What ``Connection.messages(f, qos, manual_ack=True)`` emits: the message, and ``ack``,
    which releases its PUBACK (QoS 1) or PUBREC (QoS 2) once the application processed it."""

    message: Message
    ack: Callable[[], None] = _nothing_to_ack
    """Release this message's acknowledgement. Idempotent and callable from any thread. The
    connection sends it once every QoS 1/2 message received before it was released too (MQTT 5
    acknowledges in arrival order), and once every other subscriber of the message is done.
    After the link that brought the message was lost it does nothing: the broker sends the
    message again on the next connection of the session."""
    acknowledged_early: bool = False
    """True when ``ack()`` has nothing to release: QoS 0, or a message the connection
    acknowledged on receipt (one handed over from a buffer, or a connection without manual
    acknowledgement)."""


def early(message: Message) -> Delivery:
    """``message`` as a Delivery whose ``ack()`` has nothing left to do."""
    return Delivery(message, _nothing_to_ack, acknowledged_early=True)
