"""The in-order acknowledgement ledger for received QoS 1/2 messages. Pure bookkeeping.

MQTT 5 (4.6) sends PUBACK (QoS 1) and PUBREC (QoS 2) in the order the PUBLISHes arrived. Each
received message gets a :class:`Ticket`; whoever must finish with it first takes a
:class:`Hold` on it (the dispatch itself, each manual-acknowledgement subscriber). Releasing the
last hold of the oldest tickets returns their acknowledgements, oldest first, for the connection
to send. A lost link makes every open ticket stale: the broker re-sends those messages, so
releasing one later returns nothing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import NamedTuple


class Ack(NamedTuple):
    """An acknowledgement due on the wire: PUBACK for QoS 1, PUBREC for QoS 2."""

    packet_id: int
    qos: int


@dataclass(eq=False, slots=True)
class Ticket:
    """One received QoS 1/2 message, waiting for its holds to be released."""

    packet_id: int
    qos: int
    generation: int
    holds: int = 0


@dataclass(eq=False, slots=True)
class Hold:
    """One party's claim on a ticket; released once (later releases do nothing)."""

    ticket: Ticket
    released: bool = False


_NO_TICKETS: deque[Ticket] = deque()
"""Shared by every ledger that never held a ticket, never added to: an empty deque is 768
bytes, and a connection whose messages are acknowledged at once never needs one."""


class AckLedger:
    """Tickets in arrival order for the current link."""

    def __init__(self) -> None:
        self._queue: deque[Ticket] = _NO_TICKETS
        self._generation = 0

    @property
    def pending(self) -> int:
        """Messages received on this link whose acknowledgement has not been sent."""
        return len(self._queue)

    def receive(self, packet_id: int, qos: int) -> Hold:
        """A QoS 1/2 PUBLISH arrived: its ticket, held by the returned hold (the dispatch's)."""
        if qos not in (1, 2):
            raise ValueError(f"qos: only QoS 1 and 2 are acknowledged, got {qos!r}")
        ticket = Ticket(packet_id, qos, self._generation)
        if self._queue is _NO_TICKETS:
            self._queue = deque()
        self._queue.append(ticket)
        return self.hold(ticket)

    def hold(self, ticket: Ticket) -> Hold:
        """One more party must finish with ``ticket`` before it is acknowledged."""
        ticket.holds += 1
        return Hold(ticket)

    def release(self, hold: Hold) -> list[Ack]:
        """Release ``hold``; returns the acknowledgements now due, in arrival order."""
        if hold.released:
            return []
        hold.released = True
        ticket = hold.ticket
        ticket.holds -= 1
        if ticket.generation != self._generation or ticket.holds > 0:
            return []
        due: list[Ack] = []
        queue = self._queue
        while queue and queue[0].holds <= 0:
            done = queue.popleft()
            due.append(Ack(done.packet_id, done.qos))
        return due

    def link_lost(self) -> int:
        """The link ended: every open ticket is stale (its message will be sent again by the
        broker, or was lost with a session that ended). Returns how many were open."""
        open_tickets = len(self._queue)
        self._queue.clear()
        self._generation += 1
        return open_tickets
