"""The subscription registry converges: whatever happens to SUBSCRIBE/UNSUBSCRIBE requests and
their acks (lost with the link, issued during an outage, a session lost), once the connection
is up and quiet the broker holds exactly the filters (and QoS) that ``messages()`` holds.

A hypothesis state machine drives the real registry the way ``Connection._send_due`` does,
against a small model broker: requests travel in order, the broker applies each one and answers,
and cutting the link loses whatever is still on the wire in either direction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from reactivex import Observer

from rxmqtt._subscriptions import SubscriptionRegistry
from rxmqtt.message import Message

FILTERS = ("a/b", "$share/g/#")


@dataclass
class Request:
    mid: int
    kind: str  # "sub" | "unsub"
    filters: list[tuple[str, int]]


@dataclass
class ModelBroker:
    """What the broker's session holds, and what is on the wire each way."""

    held: dict[str, int] = field(default_factory=dict)
    to_broker: list[Request] = field(default_factory=list)
    to_client: list[Request] = field(default_factory=list)

    def process_one(self) -> None:
        request = self.to_broker.pop(0)
        for topic_filter, qos in request.filters:
            if request.kind == "sub":
                self.held[topic_filter] = qos
            else:
                self.held.pop(topic_filter, None)
        self.to_client.append(request)


class Convergence(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.registry = SubscriptionRegistry()
        self.broker = ModelBroker()
        self.connected = False
        self.mids = 0
        self.observers: dict[str, list[Observer[Message]]] = {f: [] for f in FILTERS}

    # -- the connection's side (mirrors Connection._send_due / on_connack)

    def send_due(self) -> None:
        if not self.connected:
            return
        filters = self.registry.unsubscribes_due()
        if filters:
            self.mids += 1
            self.broker.to_broker.append(Request(self.mids, "unsub", [(f, 0) for f in filters]))
            self.registry.unsubscribe_sent(self.mids, filters)
        subs = self.registry.ungranted()
        if subs:
            self.mids += 1
            pairs = [(sub.topic_filter, sub.qos) for sub in subs]
            self.broker.to_broker.append(Request(self.mids, "sub", pairs))
            self.registry.sent(self.mids, subs)

    @rule(topic_filter=st.sampled_from(FILTERS), qos=st.integers(0, 2))
    def subscribe(self, topic_filter: str, qos: int) -> None:
        observer: Observer[Message] = Observer()
        self.observers[topic_filter].append(observer)
        if self.registry.add(topic_filter, qos, observer):
            self.send_due()

    @rule(topic_filter=st.sampled_from(FILTERS), pick=st.integers(0, 7))
    def dispose(self, topic_filter: str, pick: int) -> None:
        live = self.observers[topic_filter]
        if not live:
            return
        observer = live.pop(pick % len(live))
        if self.registry.remove(topic_filter, observer):
            self.send_due()

    @rule(session_present=st.booleans())
    @precondition(lambda self: not self.connected)
    def connect(self, session_present: bool) -> None:
        self.connected = True
        if not session_present:
            self.broker.held.clear()
        self.registry.link_established()
        if not session_present:
            self.registry.session_lost()
        self.send_due()

    @rule()
    @precondition(lambda self: self.connected)
    def cut(self) -> None:
        self.connected = False
        self.broker.to_broker.clear()
        self.broker.to_client.clear()

    @rule()
    @precondition(lambda self: self.connected and bool(self.broker.to_broker))
    def broker_processes_one(self) -> None:
        self.broker.process_one()

    @rule()
    @precondition(lambda self: self.connected and bool(self.broker.to_client))
    def ack_arrives(self) -> None:
        ack = self.broker.to_client.pop(0)
        codes = [(qos if ack.kind == "sub" else 0, "Success") for _, qos in ack.filters]
        if ack.kind == "sub":
            self.registry.acknowledged(ack.mid, codes)
        else:
            self.registry.unsubscribe_acknowledged(ack.mid, codes)

    # -- the property

    def wanted(self) -> dict[str, int]:
        return {sub.topic_filter: sub.qos for sub in self.registry.all()}

    def settle(self) -> None:
        while self.broker.to_broker or self.broker.to_client:
            if self.broker.to_broker:
                self.broker_processes_one()
            else:
                self.ack_arrives()

    @rule()
    @precondition(lambda self: self.connected)
    def quiet_connection_matches_messages(self) -> None:
        """Everything on the wire arrives; then the broker holds what ``messages()`` holds and
        nothing is left to send."""
        self.settle()
        assert self.broker.held == self.wanted()
        assert not self.registry.unsubscribes_due()
        assert not self.registry.ungranted()

    def teardown(self) -> None:
        """However the run ended, a reconnect to the same session converges too."""
        if not self.connected:
            self.connect(session_present=True)
        self.quiet_connection_matches_messages()

    @invariant()
    def observers_are_the_registry(self) -> None:
        assert {f for f, obs in self.observers.items() if obs} == set(self.wanted())


Convergence.TestCase.settings = settings(max_examples=500, stateful_step_count=30, deadline=None)
TestConvergence = Convergence.TestCase


def test_a_lost_unsubscribe_is_sent_again_on_the_resumed_session() -> None:
    machine = Convergence()
    machine.connect(session_present=False)
    machine.subscribe("a/b", 1)
    machine.quiet_connection_matches_messages()
    machine.dispose("a/b", 0)
    machine.broker_processes_one()  # the broker unsubscribed; the UNSUBACK is lost with the link
    machine.cut()
    machine.connect(session_present=True)
    assert [r.kind for r in machine.broker.to_broker] == ["unsub"]
    machine.quiet_connection_matches_messages()


def test_a_lost_qos_upgrade_is_sent_again_although_the_first_suback_came() -> None:
    """Found by the state machine: the SUBACK of the QoS 0 SUBSCRIBE arrives after the QoS 1
    SUBSCRIBE was sent; that one is lost with the link and must still be re-sent."""
    machine = Convergence()
    machine.connect(session_present=False)
    machine.subscribe("a/b", 0)
    machine.broker_processes_one()
    machine.subscribe("a/b", 1)
    machine.ack_arrives()
    machine.cut()
    machine.connect(session_present=True)
    assert [(r.kind, r.filters) for r in machine.broker.to_broker] == [("sub", [("a/b", 1)])]
    machine.quiet_connection_matches_messages()


def test_subscribe_unsubscribe_subscribe_during_an_outage_ends_subscribed() -> None:
    machine = Convergence()
    machine.connect(session_present=False)
    machine.subscribe("a/b", 0)
    machine.quiet_connection_matches_messages()
    machine.cut()
    machine.dispose("a/b", 0)
    machine.subscribe("a/b", 2)
    machine.connect(session_present=True)
    assert [(r.kind, r.filters) for r in machine.broker.to_broker] == [("sub", [("a/b", 2)])]
    machine.quiet_connection_matches_messages()
