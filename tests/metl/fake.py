"""The METL fake connection: records SUBSCRIBE/PUBLISH, injects PUBLISHes with packet ids,
holds acknowledgements until the envoy acknowledges (sent in arrival order, counted), plays the
case's ``push-acks`` queues and its disconnects.

It implements :class:`rxmqtt.binders.ManualAckConnection`, the interface a real connection
must offer for acknowledge-after-processing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable
from reactivex.subject import AsyncSubject

from rxmqtt.binders import Delivery
from rxmqtt.errors import MqttError
from rxmqtt.message import Message, PublishResult
from rxmqtt.settings import ConnectionSettings
from rxmqtt.topics import matches
from tests._helpers import FakePublisher


class FakeAckError(MqttError):
    """The fake broker answered a SUBSCRIBE/UNSUBSCRIBE/PUBLISH with a failure (push-ack)."""


@dataclass(slots=True)
class _Inbound:
    packet_id: int
    holders: int
    acked: bool = False
    stale: bool = False
    """Received on a connection that has since dropped: its PUBACK can no longer be sent."""


@dataclass(slots=True)
class _Outbound:
    message: Message
    result: AsyncSubject[PublishResult]


@dataclass(slots=True)
class _Subscriber:
    topic_filter: str
    observer: abc.ObserverBase[Any]
    manual: bool


@dataclass(eq=False)
class MetlConnection(FakePublisher):
    """One client's connection as the METL cases see it."""

    client_id: str
    publish_acks: deque[str] = field(default_factory=deque)
    subscribe_acks: deque[str] = field(default_factory=deque)
    unsubscribe_acks: deque[str] = field(default_factory=deque)
    supports_manual_ack: bool = True
    frozen: bool = False
    """Set by the cases' ``freeze time``; rxmqtt's envoys read no wall clock in the paths the
    cases freeze (timeouts run on the loop's monotonic clock), so it is recorded only."""

    def __post_init__(self) -> None:
        self.settings = ConnectionSettings(host="127.0.0.1", client_id=self.client_id)
        self.subscribed: list[str] = []
        self.unsubscribed: list[str] = []
        self.publications: list[Message] = []
        self.acknowledged: list[int] = []
        self._subscribers: list[_Subscriber] = []
        self._inbound: deque[_Inbound] = deque()
        self._unacked: list[_Outbound] = []
        self._changed = asyncio.Event()

    # ---------------------------------------------------------------- subscriptions

    def messages(
        self, topic_filter: str, qos: int = 0, *, manual_ack: bool = False
    ) -> Observable[Any]:
        """Messages (acknowledged on receipt) or, with ``manual_ack``, :class:`Delivery` items
        whose PUBACK waits for ``ack()``."""

        def subscribe(
            observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            self.subscribed.append(topic_filter)
            if _next(self.subscribe_acks) == "fail":
                observer.on_error(FakeAckError(f"SUBACK refused {topic_filter!r}"))
                return Disposable()
            entry = _Subscriber(topic_filter, observer, manual_ack)
            self._subscribers.append(entry)

            def unsubscribe() -> None:
                self._subscribers.remove(entry)
                self.unsubscribed.append(topic_filter)
                _next(self.unsubscribe_acks)

            return Disposable(unsubscribe)

        return reactivex.create(subscribe)

    def inject(self, message: Message, packet_id: int) -> None:
        """A PUBLISH from the broker; its PUBACK waits until every subscriber acknowledged it
        and every earlier PUBLISH was acknowledged."""
        targets = [s for s in self._subscribers if matches(s.topic_filter, message.topic)]
        entry = _Inbound(packet_id, holders=len(targets))
        self._inbound.append(entry)
        if not targets:
            self._release(entry)
        for target in targets:
            acker = _Acker(self, entry)
            if target.manual:
                target.observer.on_next(Delivery(message, acker.ack))
            else:
                target.observer.on_next(message)
                acker.ack()

    def _release(self, entry: _Inbound) -> None:
        if entry.stale:
            return
        entry.acked = True
        while self._inbound and self._inbound[0].acked:
            self.acknowledged.append(self._inbound.popleft().packet_id)
        self._changed.set()

    # ---------------------------------------------------------------- publishing

    def _publish(self, message: Message) -> Observable[PublishResult]:
        outbound = _Outbound(message, AsyncSubject())
        self._send(outbound)
        return outbound.result

    def _send(self, outbound: _Outbound) -> None:
        self.publications.append(outbound.message)
        self._changed.set()
        ack = _next(self.publish_acks)
        if ack == "drop":
            self._unacked.append(outbound)
        elif ack == "fail":
            outbound.result.on_error(FakeAckError(f"PUBACK refused {outbound.message.topic!r}"))
        else:
            outbound.result.on_next(PublishResult(outbound.message.topic, outbound.message.qos))
            outbound.result.on_completed()

    def disconnect(self) -> None:
        """The connection drops and comes back with its session: unacknowledged QoS 1
        PUBLISHes are sent again (as a real session resumption does); PUBACKs still held for
        received PUBLISHes are lost with the connection (the broker will send those again)."""
        for entry in self._inbound:
            entry.stale = True
        self._inbound.clear()
        pending, self._unacked = self._unacked, []
        for outbound in pending:
            self._send(outbound)

    async def changed(self) -> None:
        """Wait until something was published or acknowledged."""
        self._changed.clear()
        await self._changed.wait()


class _Acker:
    """One subscriber's acknowledgement of one inbound PUBLISH (idempotent)."""

    def __init__(self, conn: MetlConnection, entry: _Inbound) -> None:
        self._conn = conn
        self._entry = entry
        self._done = False

    def ack(self) -> None:
        if self._done:
            return
        self._done = True
        self._entry.holders -= 1
        if self._entry.holders <= 0:
            self._conn._release(self._entry)


def _next(queue: deque[str]) -> str:
    return queue.popleft() if queue else "success"


def push_acks(kinds: Iterable[str] | None) -> deque[str]:
    """A ``push-acks`` queue from a case."""
    return deque(kinds or ())
