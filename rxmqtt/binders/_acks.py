"""Acknowledge after processing: the narrow interface the envoys need from a connection.

AIO acknowledges a QoS 1 message only once the application processed it, and PUBACKs leave in
the order the messages arrived. A connection offering that implements
:class:`ManualAckConnection`: ``messages(filter, qos, manual_ack=True)`` yields
:class:`Delivery` items whose ``ack()`` releases the acknowledgement; the connection holds each
PUBACK until its message and every earlier one are acknowledged (and, for a message several
subscriptions matched, until all of them acknowledged it).

:func:`deliveries` gives envoys one shape either way. On a connection without manual
acknowledgement (today's :class:`rxmqtt.Connection`, which acknowledges when the callbacks
return), ``ack()`` is a no-op -- marked :attr:`Delivery.acknowledged_early`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from reactivex import Observable
from reactivex import operators as ops

from rxmqtt.message import Message

from ._connection import MqttConnection


@dataclass(frozen=True, slots=True)
class Delivery:
    """A received message and the means to acknowledge it once processed."""

    message: Message
    ack: Callable[[], None]
    """Release this message's PUBACK (idempotent). The connection sends it once every message
    received before it was acknowledged too."""
    acknowledged_early: bool = False
    """True when the connection already acknowledged it on receipt (no manual-ack support)."""


@runtime_checkable
class ManualAckConnection(Protocol):
    """A connection that can hold acknowledgements until the application releases them."""

    supports_manual_ack: bool

    def messages(
        self, topic_filter: str, qos: int = 0, *, manual_ack: bool = False
    ) -> Observable[Delivery]:
        """With ``manual_ack=True``: a ref-counted subscription yielding :class:`Delivery`."""
        ...


def _early(message: Message) -> Delivery:
    return Delivery(message, _no_ack, acknowledged_early=True)


def _no_ack() -> None:
    """The connection acknowledged on receipt already (no manual-ack mode yet)."""


def deliveries(conn: MqttConnection, topic_filter: str, qos: int) -> Observable[Delivery]:
    """``topic_filter``'s messages as :class:`Delivery` items, acknowledged after processing
    when ``conn`` supports it, else already acknowledged by the connection."""
    if getattr(conn, "supports_manual_ack", False) and isinstance(conn, ManualAckConnection):
        return conn.messages(topic_filter, qos, manual_ack=True)
    return conn.messages(topic_filter, qos).pipe(ops.map(_early))
