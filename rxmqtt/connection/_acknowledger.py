"""Acknowledge after processing: the connection's side of ``messages(f, qos, manual_ack=True)``.

The engine runs paho with manual acknowledgement; every received QoS 1/2 message gets a ticket
in the :class:`~rxmqtt._ack_ledger.AckLedger` held by its dispatch (so every plain subscriber
is done once its ``on_next`` returned) and by each manual subscriber it reached, until that
one calls :attr:`Delivery.ack`. The ledger releases PUBACK/PUBREC in arrival order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from reactivex import abc

from .._ack_ledger import AckLedger, Hold, Ticket
from ..delivery import Delivery, early
from ..message import Message, packet_id_of

log = logging.getLogger("rxmqtt.connection")

AckSender = Callable[[int, int], None]
"""(packet id, QoS): sends a PUBACK or PUBREC (``Engine.ack``)."""


class Acknowledger:
    """Holds each received QoS 1/2 message's acknowledgement until everyone it reached is done."""

    def __init__(self, call_on_loop: Callable[..., None]) -> None:
        self._ledger = AckLedger()
        self._call_on_loop = call_on_loop
        self._send: AckSender | None = None
        self._receiving: tuple[Message, Ticket] | None = None
        """The message being dispatched, and its ticket (manual readers hold it)."""
        self._readers = 0
        """Manual readers subscribed now."""

    def attach(self, send: AckSender) -> None:
        """Where acknowledgements go (the engine, once the connection started)."""
        self._send = send

    @property
    def pending(self) -> int:
        """Messages received on this link whose acknowledgement was not sent yet."""
        return self._ledger.pending

    @property
    def direct(self) -> bool:
        """No manual reader exists and no acknowledgement waits: the next message can be
        acknowledged as soon as it was dispatched (:meth:`send`), without a ticket."""
        return not self._readers and not self._ledger.pending

    def send(self, message: Message) -> None:
        """Acknowledge ``message`` now (see :meth:`direct`)."""
        packet_id = packet_id_of(message)
        if packet_id and self._send is not None:
            self._send(packet_id, message.qos)

    def received(self, message: Message) -> Hold | None:
        """QoS 1/2 ``message`` arrived and is about to be dispatched: its dispatch's hold. Pass
        it to :meth:`dispatched` afterwards. None when it has no packet id to acknowledge."""
        packet_id = packet_id_of(message)
        if not packet_id:
            return None
        hold = self._ledger.receive(packet_id, message.qos)
        self._receiving = (message, hold.ticket)
        return hold

    def dispatched(self, hold: Hold | None) -> None:
        """Every plain subscriber's ``on_next`` returned: release the dispatch's hold."""
        self._receiving = None
        if hold is not None:
            self.release(hold)

    def reader(self, observer: abc.ObserverBase[Delivery]) -> ManualReader:
        """A ``messages()`` subscriber that acknowledges by hand (register it as the observer;
        :meth:`ManualReader.release_all` once it is gone)."""
        self._readers += 1
        return ManualReader(self, observer)

    def reader_gone(self) -> None:
        """A manual reader ended (see :meth:`reader`)."""
        self._readers -= 1

    def link_lost(self) -> None:
        """The link ended: acknowledgements still held can no longer be sent (the broker sends
        those messages again on the session's next connection)."""
        self._receiving = None
        unacknowledged = self._ledger.link_lost()
        if unacknowledged:
            log.debug(
                "%d received message(s) were not acknowledged when the link ended", unacknowledged
            )

    def hold_current(self, message: Message) -> Hold | None:
        """A hold on ``message``'s ticket when it is the one being dispatched; None when it
        comes from a buffer (acknowledged on receipt)."""
        receiving = self._receiving
        if receiving is None or receiving[0] is not message:
            return None  # handed over from a buffer: acknowledged on receipt
        return self._ledger.hold(receiving[1])

    def release(self, hold: Hold) -> None:
        """Release ``hold`` and send the acknowledgements that became due (on the loop)."""
        send = self._send
        for ack in self._ledger.release(hold):
            if send is not None:
                send(ack.packet_id, ack.qos)

    def on_loop(self, func: Callable[..., None], *args: Any) -> None:
        """Run ``func`` on the connection's loop, from any thread; nothing once it closed."""
        try:
            self._call_on_loop(func, *args)
        except RuntimeError:  # the loop is closed: so is the link, nothing is left to send
            log.debug("ack() after the connection's loop closed: nothing to do")


class ManualReader(abc.ObserverBase[Message]):
    """One ``messages(manual_ack=True)`` subscriber: each message reaches it as a
    :class:`Delivery` that holds the message's acknowledgement until ``ack()``."""

    def __init__(self, acks: Acknowledger, observer: abc.ObserverBase[Delivery]) -> None:
        self._acks = acks
        self._observer = observer
        self._holds: set[Hold] = set()
        self._ended = False

    def on_next(self, value: Message) -> None:
        hold = None if self._ended else self._acks.hold_current(value)
        if hold is None:
            self._observer.on_next(early(value))
            return
        self._holds.add(hold)
        self._observer.on_next(Delivery(value, lambda: self._ack(hold)))

    def on_error(self, error: Exception) -> None:
        self.release_all()
        self._observer.on_error(error)

    def on_completed(self) -> None:
        self.release_all()
        self._observer.on_completed()

    def release_all(self) -> None:
        """The subscriber is gone (disposed, refused, completed): release what it still holds.
        Holding on would stop every later acknowledgement (they go in arrival order) and, at
        the client's Receive Maximum, the broker's sending, until the link drops; and nobody
        is left to acknowledge them. Call on the loop."""
        if not self._ended:
            self._ended = True
            self._acks.reader_gone()
        holds, self._holds = self._holds, set()
        for hold in holds:
            self._acks.release(hold)

    def _ack(self, hold: Hold) -> None:
        self._acks.on_loop(self._release, hold)

    def _release(self, hold: Hold) -> None:
        if hold in self._holds:
            self._holds.discard(hold)
            self._acks.release(hold)
