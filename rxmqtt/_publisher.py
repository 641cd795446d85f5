"""The publish pipeline: offline queue, the broker's Receive Maximum window, acknowledgement
tracking, ack timeouts and retries of transient refusals.

Every ``publish()`` ends here in exactly one of: acknowledged (``PublishResult``), refused by the
broker (``PublishError``), dropped by a policy (``MessageDroppedError`` plus an item on
``dropped``), or closed (``ConnectionClosedError``). The wire (the engine) is behind a small
protocol, so this module never touches paho or sockets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

from ._outcome import Outcome, settle_error, settle_value
from .errors import (
    ConnectionClosedError,
    MessageDroppedError,
    MessageMayBeLostError,
    NotConnectedError,
    PublishError,
    PublishRefusedError,
)
from .lifecycle import Disconnect, DisconnectSource
from .message import Message, PublishResult
from .policies import (
    PublishRetry,
    QueuePolicy,
    is_per_message_disconnect_code,
    is_retriable_publish_code,
)
from .queue import DroppedMessage, DropReason, MemoryStore, OfflineQueue, QueuedMessage, QueueStats

if TYPE_CHECKING:
    from .broker_limits import BrokerLimits

Result = Outcome[PublishResult]

WRITTEN = "Success"
"""The reason of a QoS 0 publish's result: written to the socket (PUBACK's Success code)."""

WRITTEN_RESULTS_REMEMBERED = 256
"""Topics whose QoS 0 result a publisher keeps to share (the count is bounded, not the use)."""

HOUSEKEEPING_INTERVAL = 1.0
"""Seconds between sweeps of expired queued messages and flushes of a persistent store. The
sweep runs only while something is queued (or a persistent store is used): an idle connection
keeps no timer for it."""

REFUSALS_TO_GIVE_UP = 2
"""How many DISCONNECTs with the same per-message reason code a publish must draw (at least one
while it was the only QoS 1/2 publish in flight) before it is given up as refused."""


class Wire(Protocol):
    """What the publisher needs from the engine."""

    @property
    def link_up(self) -> bool: ...

    @property
    def receive_maximum(self) -> int: ...

    @property
    def limits(self) -> BrokerLimits: ...

    def publish(self, message: Message) -> int: ...

    def in_flight_mids(self) -> list[int]: ...

    def publishes_on_the_wire(self) -> list[int]: ...

    def isolate_publishes(self) -> None: ...

    def forget_publish(self, mid: int) -> None: ...

    def abort(self, disconnect: Disconnect) -> None: ...


class Timer(Protocol):
    def cancel(self) -> None: ...


CallLater = Callable[[float, Callable[[], None]], Timer]


@dataclasses.dataclass(eq=False, slots=True)
class _InFlight:
    """A publish handed to the wire and not yet resolved."""

    message: Message
    result: Result
    sent_at: float
    item: QueuedMessage | None = None
    """Its queue entry when it went through the queue (acknowledged there once resolved)."""
    refusals: int = 0
    retry_delays: Iterator[float] | None = None
    disconnected_by: int | None = None
    """The per-message reason code of the DISCONNECTs this publish drew (see ``link_lost``)."""
    disconnects: int = 0
    """How many DISCONNECTs with ``disconnected_by`` it drew in a row."""
    disconnected_alone: bool = False
    """Whether one of them came while it was the only QoS 1/2 publish in flight."""


def _drop_error(dropped: DroppedMessage) -> Exception:
    if dropped.reason is DropReason.CLOSED:
        return ConnectionClosedError(
            f"closed before the publish to {dropped.message.topic!r} was sent "
            "(a persistent queue store keeps it for the next start)"
        )
    return MessageDroppedError(dropped.reason.value, dropped.message.topic)


class Publisher:
    """Owns every publish from ``publish()`` to its single outcome."""

    def __init__(
        self,
        queue_policy: QueuePolicy,
        publish_retry: PublishRetry,
        *,
        clock: Callable[[], float],
        on_dropped: Callable[[DroppedMessage], None],
        on_stats: Callable[[QueueStats], None],
    ) -> None:
        self._retry = publish_retry
        self._clock = clock
        self._on_dropped = on_dropped
        self._on_stats = on_stats
        self._queue = OfflineQueue(queue_policy, on_drop=self._queue_dropped)
        self._persistent = not isinstance(self._queue.store, MemoryStore)
        self._unacked: dict[int, _InFlight] = {}
        self._window_used = 0
        """QoS 1/2 publishes awaiting their final ack: bounded by the broker's Receive Maximum."""
        self._wire: Wire | None = None
        self._call_later: CallLater | None = None
        self._ack_sweep: Timer | None = None
        self._housekeeping: Timer | None = None
        self._closed = False
        self._stats_scheduled = False
        self._written_results: dict[str, PublishResult] = {}
        """The result of a written QoS 0 publish, by topic (frozen, so shared)."""

    # ------------------------------------------------------------------ wiring

    def attach(self, wire: Wire, call_later: CallLater) -> None:
        """Bind to the engine and the loop's timer (at ``Connection.start()``)."""
        self._wire = wire
        self._call_later = call_later
        self._arm_housekeeping()  # (a persistent store may have reloaded messages)

    def set_policy(self, policy: QueuePolicy) -> None:
        """Re-bound the queue now; what no longer fits is reported dropped."""
        self._queue.set_policy(policy)
        self.publish_stats()

    # ------------------------------------------------------------------ publishing

    def publish(self, message: Message, result: Result) -> None:
        """Send now if the wire and the window allow, else queue (or drop by policy)."""
        if self._closed:
            settle_error(result, ConnectionClosedError(f"publish to {message.topic!r}: closed"))
            return
        # QoS 0 promises no order relative to queued QoS 1/2, so it never waits behind them.
        # With a persistent store QoS 1/2 always pass through it, so a crash cannot lose them.
        direct = message.qos == 0 or (len(self._queue) == 0 and not self._persistent)
        if direct and self._can_send(message):
            self._send(message, result, None)
            return
        self._queue.offer(message, token=result)  # (QoS 0 dropped here if the policy says so)
        self.drain()

    def drain(self) -> None:
        """Move queued messages to the wire while it is up and the window has room."""
        while (item := self._queue.pop_if(self._can_send)) is not None:
            result = item.token
            if not isinstance(result, Outcome):  # reloaded from a store by a new process
                result = Outcome()
            self._send(item.message, result, item)
        self.publish_stats()

    def _can_send(self, message: Message) -> bool:
        wire = self._wire
        if wire is None or not wire.link_up:
            return False
        return message.qos == 0 or self._window_used < wire.receive_maximum

    def _send(self, message: Message, result: Result, item: QueuedMessage | None) -> None:
        assert self._wire is not None
        refusal = self._wire.limits.refusal(message)
        if refusal is not None:  # queued before this broker's CONNACK said what it allows
            _, code, limit = refusal
            self._give_up(message, result, item, code, f"{limit}; not sent")
            return
        try:
            mid = self._wire.publish(message)
        except NotConnectedError:
            if item is not None:
                self._queue.requeue_front(item)
            else:
                self._queue.offer(message, token=result)
            return
        except Exception as exc:  # the wire cannot encode it: this publish fails, alone
            if item is not None:
                self._queue.acknowledge(item.seq)
            settle_error(result, exc)
            return
        # (sent_at serves the ack timeout, which only QoS 1/2 has: QoS 0 skips the clock)
        sent_at = self._clock() if message.qos else 0.0
        self._track(mid, _InFlight(message, result, sent_at, item))

    def _track(self, mid: int, entry: _InFlight) -> None:
        self._unacked[mid] = entry
        if entry.message.qos > 0:
            self._window_used += 1
            self._arm_ack_sweep()
        self.publish_stats()

    # ------------------------------------------------------------------ outcomes

    def _untrack(self, mid: int) -> _InFlight | None:
        entry = self._unacked.pop(mid, None)
        if entry is not None and entry.message.qos > 0:
            self._window_used -= 1
        return entry

    def acknowledged(self, mid: int, reason_code: int, reason: str) -> None:
        """PUBACK / PUBCOMP (QoS 2 carries the PUBREC's code) or, for QoS 0, written."""
        if self._settle(mid, reason_code, reason):
            self.drain()

    def acknowledged_all(self, acks: list[tuple[int, int, str]]) -> None:
        """Several ``acknowledged`` at once, in order, ``(mid, reason_code, reason)`` each: the
        window is refilled once for them all."""
        settled = False
        for mid, reason_code, reason in acks:
            settled |= self._settle(mid, reason_code, reason)
        if settled:
            self.drain()

    def _settle(self, mid: int, reason_code: int, reason: str) -> bool:
        """Resolve (or retry) one acknowledged publish; False when it is not ours (any more)."""
        entry = self._untrack(mid)
        if entry is None:
            return False
        message, result = entry.message, entry.result
        if reason_code >= 0x80 and self._retry_refused(entry, reason_code):
            pass
        else:
            if entry.item is not None:
                self._queue.acknowledge(entry.item.seq)
            if reason_code >= 0x80:
                settle_error(result, PublishError(reason_code, reason, message.topic))
            else:
                settle_value(result, PublishResult(message.topic, message.qos, reason_code, reason))
        return True

    def written(self, mids: tuple[int, ...]) -> None:
        """QoS 0 publishes written to the socket: each succeeded (a QoS 0 publish has no
        acknowledgement; written is as far as MQTT follows it). One drain for the batch."""
        unacked = self._unacked
        results = self._written_results
        for mid in mids:
            entry = unacked.pop(mid, None)
            if entry is None:
                continue
            if entry.item is not None:
                self._queue.acknowledge(entry.item.seq)
            topic = entry.message.topic
            written = results.get(topic)
            if written is None:  # (the same frozen result serves every QoS 0 publish to topic)
                if len(results) >= WRITTEN_RESULTS_REMEMBERED:
                    results.clear()
                written = results[topic] = PublishResult(topic, 0, 0, WRITTEN)
            settle_value(entry.result, written)
        self.drain()

    def uncertain(self, mid: int, reason_code: int, reason: str) -> None:
        """A QoS 2 exchange ended without the broker confirming the message: never a success,
        an error that says it may be lost."""
        entry = self._untrack(mid)
        if entry is None:
            return
        if entry.item is not None:
            self._queue.acknowledge(entry.item.seq)
        settle_error(entry.result, MessageMayBeLostError(reason_code, reason, entry.message.topic))
        self.drain()

    def _give_up(
        self,
        message: Message,
        result: Result,
        item: QueuedMessage | None,
        reason_code: int,
        reason: str,
    ) -> None:
        """End a publish the broker will not take: ``PublishRefusedError`` on its observable and
        an item on ``dropped`` (through the queue when it came from there)."""
        settle_error(result, PublishRefusedError(reason_code, reason, message.topic))
        if item is None or self._queue.discard(item.seq, DropReason.REFUSED) is None:
            self._on_dropped(DroppedMessage(message, DropReason.REFUSED, self._clock()))

    def _retry_refused(self, entry: _InFlight, reason_code: int) -> bool:
        """Re-publish after backoff when the refusal is transient (quota exceeded, server busy)
        and attempts remain; True when a retry was scheduled."""
        if not is_retriable_publish_code(reason_code) or entry.refusals >= self._retry.max_attempts:
            return False
        if self._call_later is None:
            return False
        entry.refusals += 1
        if entry.retry_delays is None:
            entry.retry_delays = self._retry.backoff.delays()
        self._call_later(next(entry.retry_delays), lambda: self._republish(entry))
        return True

    def _republish(self, entry: _InFlight) -> None:
        if self._closed:
            settle_error(
                entry.result, ConnectionClosedError(f"publish to {entry.message.topic!r}: closed")
            )
            return
        if self._can_send(entry.message):
            assert self._wire is not None
            try:
                mid = self._wire.publish(entry.message)
            except NotConnectedError:
                pass
            else:
                entry.sent_at = self._clock()
                self._track(mid, entry)
                return
        if entry.item is not None:
            self._queue.requeue_front(entry.item)
        else:
            self._queue.offer(entry.message, token=entry.result)
        self.publish_stats()

    def link_established(self) -> None:
        """A connection is up: restart the ack clocks (the wire re-sends what it holds) and
        drain the queue."""
        now = self._clock()
        for entry in self._unacked.values():
            entry.sent_at = now
        self.drain()

    def link_lost(self, disconnect: Disconnect) -> None:
        """QoS 0 publishes the wire had not written when the link died are forgotten by paho:
        they go back to the queue (or are reported dropped by policy) instead of vanishing.
        A DISCONNECT about one PUBLISH is held against the publish it was about."""
        assert self._wire is not None
        code = disconnect.reason_code
        if (
            disconnect.source is DisconnectSource.SERVER
            and code is not None
            and is_per_message_disconnect_code(code)
        ):
            self._disconnected_over_a_publish(disconnect, code)
        still_held = set(self._wire.in_flight_mids())
        for mid in [m for m, e in self._unacked.items() if e.message.qos == 0]:
            if mid in still_held:
                continue
            entry = self._unacked.pop(mid)
            if entry.item is not None:
                self._queue.requeue_front(entry.item)
            else:
                self._queue.offer(entry.message, token=entry.result)
        self.publish_stats()

    def _disconnected_over_a_publish(self, disconnect: Disconnect, code: int) -> None:
        """The broker closed the connection over one PUBLISH (0x99 Payload format invalid,
        ...); re-sending it as is would be refused again, forever.

        Which one: a broker handles packets in order and acknowledges QoS 1/2 PUBLISHes in the
        order it received them [MQTT-4.6.0], so the suspect is the oldest QoS 1/2 publish on the
        wire still unacknowledged. A broker that holds its acks (for replication, say) may not
        have acknowledged an innocent one yet, so one refusal only marks it; the next connection
        sends QoS 1/2 publishes one at a time, and the publish is given up once it has drawn
        ``REFUSALS_TO_GIVE_UP`` refusals with the same code, one of them while it was alone in
        flight. (QoS 0 publishes have no ack: one that caused it is not sent again anyway.)"""
        assert self._wire is not None
        suspects = [mid for mid in self._wire.publishes_on_the_wire() if mid in self._unacked]
        if not suspects:
            return
        mid = suspects[0]
        entry = self._unacked[mid]
        if entry.disconnected_by != code:
            entry.disconnected_by, entry.disconnects, entry.disconnected_alone = code, 0, False
        entry.disconnects += 1
        entry.disconnected_alone |= len(suspects) == 1
        if entry.disconnects >= REFUSALS_TO_GIVE_UP and entry.disconnected_alone:
            self._untrack(mid)
            self._wire.forget_publish(mid)
            self._give_up(
                entry.message,
                entry.result,
                entry.item,
                code,
                f"{disconnect.reason}; the broker closed the connection over this publish "
                f"{entry.disconnects} times",
            )
            return
        self._wire.isolate_publishes()

    def close(self) -> None:
        """Error what is unacknowledged and what is queued (a persistent store keeps both)."""
        self._closed = True
        for timer in (self._ack_sweep, self._housekeeping):
            if timer is not None:
                timer.cancel()
        self._ack_sweep = self._housekeeping = None
        unacked, self._unacked = self._unacked, {}
        self._window_used = 0
        for entry in unacked.values():
            settle_error(
                entry.result,
                ConnectionClosedError(
                    f"closed before the broker acknowledged the publish to {entry.message.topic!r}"
                ),
            )
        self._queue.close()
        self.publish_stats(now=True)

    def housekeeping(self) -> None:
        """Drop expired queued messages (reported) and flush a persistent store's batch."""
        if self._queue.expire():
            self.publish_stats()
        if self._persistent:
            self._queue.flush()

    def _arm_housekeeping(self) -> None:
        """Sweep in :data:`HOUSEKEEPING_INTERVAL` if there is anything to sweep (called
        whenever the queue's statistics are reported, i.e. after every change to it)."""
        if self._housekeeping is not None or self._call_later is None or self._closed:
            return
        if self._persistent or len(self._queue):
            self._housekeeping = self._call_later(HOUSEKEEPING_INTERVAL, self._tidy)

    def _tidy(self) -> None:
        self._housekeeping = None
        self.housekeeping()
        self._arm_housekeeping()

    # ------------------------------------------------------------------ ack timeouts

    def _arm_ack_sweep(self) -> None:
        timeout = self._retry.ack_timeout
        if timeout is None or self._ack_sweep is not None or self._call_later is None:
            return
        self._ack_sweep = self._call_later(timeout / 4, self._sweep_acks)

    def _sweep_acks(self) -> None:
        """An ack later than ``ack_timeout`` means the link is dead though the socket is open:
        drop it, so the message is re-sent (with DUP) on the next connection, as MQTT 5 requires.
        """
        self._ack_sweep = None
        timeout = self._retry.ack_timeout
        wire = self._wire
        if timeout is None or wire is None or self._closed:
            return
        now = self._clock()
        overdue = next(
            (
                (mid, e)
                for mid, e in self._unacked.items()
                if e.message.qos > 0 and now - e.sent_at >= timeout
            ),
            None,
        )
        if overdue is not None and wire.link_up:
            mid, entry = overdue
            wire.abort(
                Disconnect(
                    0x80,
                    f"no acknowledgement for the publish to {entry.message.topic!r} "
                    f"(packet {mid}) within {timeout:g}s",
                    DisconnectSource.CLIENT,
                    at=now,
                )
            )
        if any(e.message.qos > 0 for e in self._unacked.values()):
            self._arm_ack_sweep()

    # ------------------------------------------------------------------ accounting

    def _queue_dropped(self, dropped: DroppedMessage, item: QueuedMessage) -> None:
        if isinstance(item.token, Outcome):
            settle_error(item.token, _drop_error(dropped))
        self._on_dropped(dropped)

    def publish_stats(self, *, now: bool = False) -> None:
        """Report ``QueueStats`` (depth, bytes, drops, drains, in flight).

        Offline, every change is reported at once, so the stream's current value is exact right
        after a ``publish()``. Online, a burst of publishes and acknowledgements changes them
        for every message: they are reported once per loop pass (never more than a pass
        behind) instead of three times per message. ``now`` reports at once (closing does, so
        the final numbers precede the stream's completion)."""
        wire = self._wire
        if now or wire is None or self._call_later is None or not wire.link_up:
            self._emit_stats()
        elif not self._stats_scheduled:
            self._stats_scheduled = True
            self._call_later(0, self._emit_stats)

    def _emit_stats(self) -> None:
        self._stats_scheduled = False
        self._on_stats(dataclasses.replace(self._queue.stats(), in_flight=len(self._unacked)))
        self._arm_housekeeping()
