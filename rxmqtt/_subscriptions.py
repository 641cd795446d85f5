"""Reference-counted subscriptions and trie dispatch for ``Connection.messages()``.

Pure bookkeeping: it decides when a SUBSCRIBE or UNSUBSCRIBE is due and which observers a message
reaches; the connection does the sending. A request whose acknowledgement never came (the link was
cut in between) is due again on the next connection, so the broker's view converges on what
``messages()`` holds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from reactivex import abc

from ._outcome import Outcome, settle_error, settle_value
from .errors import SubscribeError
from .message import Message
from .subscription_options import SubscriptionOptions
from .topics import TopicTrie

log = logging.getLogger("rxmqtt.connection")


@dataclass(eq=False)
class Subscription:
    """One broker subscription shared by every ``messages()`` subscriber of the same filter."""

    topic_filter: str
    qos: int
    observers: list[abc.ObserverBase[Message]] = field(default_factory=list)
    granted: bool = False
    """The broker acknowledged it in the current session."""
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0
    identifier: int = 0
    """Its Subscription Identifier (0: none): messages the broker sends for it carry it."""
    granted_qos: int | None = None
    """The QoS of the last SUBACK that granted it."""
    waiters: list[Outcome[int]] = field(default_factory=list)
    """``subscribe()`` calls waiting for the broker to grant it (resolved with the QoS)."""

    def options(self) -> SubscriptionOptions:
        """What a SUBSCRIBE for it asks."""
        return SubscriptionOptions(
            self.qos, self.no_local, self.retain_as_published, self.retain_handling
        )


class SubscriptionRegistry:
    """Live filters, their observers, and a topic trie for dispatch."""

    def __init__(self) -> None:
        self._by_filter: dict[str, Subscription] = {}
        self._trie: TopicTrie[Subscription] = TopicTrie()
        self._pending_acks: dict[int, list[Subscription]] = {}
        self._unsent: dict[str, Subscription] = {}
        """Due for a SUBSCRIBE on this connection and not yet sent (an ordered set)."""
        self._unsubscribe_due: dict[str, None] = {}
        """Filters no longer live that the broker may still hold: due for an UNSUBSCRIBE and not
        yet sent (an ordered set)."""
        self._pending_unsubscribes: dict[int, list[str]] = {}

    def __len__(self) -> int:
        return len(self._by_filter)

    def add(self, topic_filter: str, qos: int, observer: abc.ObserverBase[Message]) -> bool:
        """Register an observer; True when a SUBSCRIBE is due (new filter or a higher QoS)."""
        sub = self._by_filter.get(topic_filter)
        if sub is None:
            sub = Subscription(topic_filter, qos)
            self._by_filter[topic_filter] = sub
            self._trie.add(topic_filter, sub)
            sub.observers.append(observer)
            self._unsent[topic_filter] = sub
            self._unsubscribe_due.pop(topic_filter, None)  # the SUBSCRIBE supersedes it
            return True
        sub.observers.append(observer)
        if qos > sub.qos:
            sub.qos = qos
            sub.granted = False
            self._unsent[topic_filter] = sub
            return True
        return False

    def remove(self, topic_filter: str, observer: abc.ObserverBase[Message]) -> bool:
        """Unregister an observer; True when it was the last one (an UNSUBSCRIBE is now due)."""
        sub = self._by_filter.get(topic_filter)
        if sub is None:
            return False
        if observer in sub.observers:
            sub.observers.remove(observer)
        if sub.observers:
            return False
        del self._by_filter[topic_filter]
        self._trie.remove(topic_filter, sub)
        self._unsent.pop(topic_filter, None)
        self._unsubscribe_due[topic_filter] = None
        return True

    def get(self, topic_filter: str) -> Subscription | None:
        return self._by_filter.get(topic_filter)

    def all(self) -> list[Subscription]:
        return list(self._by_filter.values())

    def ungranted(self) -> list[Subscription]:
        """Subscriptions due for a SUBSCRIBE: those the broker does not know of and that were
        not already sent on this connection (their SUBACK is pending). Taking them marks them
        sent, so subscribing N filters one by one costs N, not N²/2, filters on the wire."""
        subs = list(self._unsent.values())
        self._unsent.clear()
        return subs

    def unsubscribes_due(self) -> list[str]:
        """Filters due for an UNSUBSCRIBE; taking them marks them sent (see
        :meth:`unsubscribe_sent`)."""
        filters = list(self._unsubscribe_due)
        self._unsubscribe_due.clear()
        return filters

    def link_established(self) -> None:
        """A new connection: a SUBSCRIBE or UNSUBSCRIBE whose acknowledgement never came may not
        have reached the broker, so what was sent and not acknowledged is due again (unless
        ``messages()`` changed its mind about that filter in the meantime)."""
        for subs in self._pending_acks.values():
            for sub in subs:
                # Even a granted one: a SUBACK for an earlier SUBSCRIBE (a lower QoS) may have
                # granted it while this one, the last word, was lost.
                if self._by_filter.get(sub.topic_filter) is sub:
                    self._unsent[sub.topic_filter] = sub
        self._pending_acks.clear()
        for filters in self._pending_unsubscribes.values():
            for topic_filter in filters:
                if topic_filter not in self._by_filter:
                    self._unsubscribe_due[topic_filter] = None
        self._pending_unsubscribes.clear()

    def session_lost(self) -> None:
        """The broker forgot every subscription (new session): every live filter is due for a
        SUBSCRIBE and no UNSUBSCRIBE is needed."""
        for sub in self._by_filter.values():
            sub.granted = False
        self._pending_acks.clear()
        self._unsent = dict(self._by_filter)
        self._pending_unsubscribes.clear()
        self._unsubscribe_due.clear()

    def grants_confirmed(self) -> None:
        """A CONNACK was handled (after ``session_lost`` when the session was lost): whoever
        waits for a subscription the broker still has (granted, not due again) has it."""
        for sub in self._by_filter.values():
            if sub.granted and sub.granted_qos is not None and sub.topic_filter not in self._unsent:
                waiters, sub.waiters = sub.waiters, []
                for waiter in waiters:
                    settle_value(waiter, sub.granted_qos)

    def sent(self, mid: int, subs: list[Subscription]) -> None:
        self._pending_acks[mid] = subs

    def unsubscribe_sent(self, mid: int, filters: list[str]) -> None:
        self._pending_unsubscribes[mid] = filters

    def unsubscribe_acknowledged(self, mid: int, reason_codes: list[tuple[int, str]]) -> None:
        """Apply an UNSUBACK. A refusal (e.g. 0x87 Not authorized) leaves the broker's
        subscription in place and re-sending cannot change that, so it is logged, not retried;
        0x11 (No subscription existed) is the view we wanted."""
        filters = self._pending_unsubscribes.pop(mid, [])
        for topic_filter, (code, reason) in zip(filters, reason_codes, strict=False):
            if code >= 0x80:
                log.warning(
                    "the broker refused to UNSUBSCRIBE %r: 0x%02X %s; it keeps delivering it "
                    "(to unmatched_messages)",
                    topic_filter,
                    code,
                    reason,
                )

    def acknowledged(self, mid: int, reason_codes: list[tuple[int, str]]) -> None:
        """Apply a SUBACK: grant, or error and drop each refused subscription's observers."""
        subs = self._pending_acks.pop(mid, [])
        for sub, (code, reason) in zip(subs, reason_codes, strict=False):
            if code < 0x80:
                sub.granted = True
                sub.granted_qos = code
                waiters, sub.waiters = sub.waiters, []
                for waiter in waiters:
                    settle_value(waiter, code)
            else:
                self.refuse(sub, SubscribeError(code, reason, sub.topic_filter))

    def refuse(self, sub: Subscription, error: SubscribeError) -> None:
        """The broker will not have this subscription: error its observers and forget it."""
        if self._by_filter.get(sub.topic_filter) is not sub:
            return
        log.warning("%s", error)
        observers = list(sub.observers)
        sub.observers.clear()
        del self._by_filter[sub.topic_filter]
        self._trie.remove(sub.topic_filter, sub)
        self._unsent.pop(sub.topic_filter, None)
        waiters, sub.waiters = sub.waiters, []
        for waiter in waiters:
            settle_error(waiter, error)
        for observer in observers:
            observer.on_error(error)

    def dispatch(self, message: Message) -> int:
        """Deliver ``message`` to every matching observer; returns how many got it. A message
        carrying Subscription Identifiers was sent for those subscriptions only (a broker may
        send one copy per overlapping subscription): it skips the others."""
        delivered = 0
        ids = message.properties.subscription_identifiers
        for sub in self._trie.match(message.topic):
            if ids and sub.identifier and sub.identifier not in ids:
                continue
            for observer in list(sub.observers):
                observer.on_next(message)
                delivered += 1
        return delivered

    def complete_all(self) -> None:
        """Complete every observer (the connection closed)."""
        subs = list(self._by_filter.values())
        self._by_filter.clear()
        self._trie = TopicTrie()
        self._pending_acks.clear()
        self._unsent.clear()
        self._unsubscribe_due.clear()
        self._pending_unsubscribes.clear()
        for sub in subs:
            for observer in list(sub.observers):
                observer.on_completed()
