"""Acknowledge after processing: the narrow interface the envoys need from a connection.

AIO acknowledges a QoS 1 message only once the application processed it, and PUBACKs leave in
the order the messages arrived. A connection offering that implements
:class:`ManualAckConnection`: ``messages(filter, qos, manual_ack=True)`` yields
:class:`~rxmqtt.Delivery` items whose ``ack()`` releases the acknowledgement; the connection
holds each PUBACK until its message and every earlier one are acknowledged (and, for a message
several subscriptions matched, until all of them are done). :class:`rxmqtt.Connection` does.

:func:`deliveries` gives envoys one shape either way. On a connection without manual
acknowledgement, ``ack()`` is a no-op -- marked :attr:`~rxmqtt.Delivery.acknowledged_early`.
"""

from __future__ import annotations

from typing import Literal, Protocol, overload, runtime_checkable

from reactivex import Observable
from reactivex import operators as ops

from rxmqtt.delivery import Delivery, early
from rxmqtt.message import Message

from ._connection import MqttConnection

__all__ = ["Delivery", "ManualAckConnection", "deliveries"]


@runtime_checkable
class ManualAckConnection(Protocol):
    """A connection that can hold acknowledgements until the application releases them."""

    supports_manual_ack: bool

    @overload
    def messages(
        self, topic_filter: str, qos: int = 0, *, manual_ack: Literal[False] = False
    ) -> Observable[Message]: ...

    @overload
    def messages(
        self, topic_filter: str, qos: int = 0, *, manual_ack: Literal[True]
    ) -> Observable[Delivery]: ...

    def messages(
        self, topic_filter: str, qos: int = 0, *, manual_ack: bool = False
    ) -> Observable[Message] | Observable[Delivery]:
        """With ``manual_ack=True``: a ref-counted subscription yielding :class:`Delivery`."""
        ...


def deliveries(conn: MqttConnection, topic_filter: str, qos: int) -> Observable[Delivery]:
    """``topic_filter``'s messages as :class:`Delivery` items, acknowledged after processing
    when ``conn`` supports it, else already acknowledged by the connection."""
    if getattr(conn, "supports_manual_ack", False) and isinstance(conn, ManualAckConnection):
        return conn.messages(topic_filter, qos, manual_ack=True)
    return conn.messages(topic_filter, qos).pipe(ops.map(early))
