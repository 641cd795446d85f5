"""Subscriptions converge: a SUBSCRIBE or UNSUBSCRIBE whose ack never came (the link was cut
in between), or one issued during an outage, is sent again until the broker holds exactly what
``messages()`` holds.

First against a scripted raw MQTT 5 peer that withholds the SUBACK/UNSUBACK and closes, so the
test sees every packet the client sends on the next connection; then against Mosquitto behind a
FaultProxy, where the broker's own view is checked by what it delivers.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest

from rxmqtt import (
    Connection,
    ConnectionSettings,
    ConnectionState,
    GracePeriod,
    Message,
)
from rxmqtt.testing import FaultProxy, MosquittoBroker
from rxmqtt.testing._peer import (
    SUBSCRIBE,
    UNSUBSCRIBE,
    PeerLink,
    Request,
    ScriptedPeer,
    connack,
    publish,
    reply,
)
from rxmqtt.testing.recorder import Recorder
from tests._helpers import FAST_NO_JITTER, until_delivered

DEADLINE = 10.0

_ids = itertools.count()


def _conn(port: int) -> Connection:
    return Connection(
        ConnectionSettings(
            host="127.0.0.1",
            port=port,
            client_id=f"converge-{next(_ids)}",
            clean_start=False,
            session_expiry=3600,
            keep_alive=5,
        ),
        reconnect=FAST_NO_JITTER,
    )


async def test_a_subscribe_lost_before_its_suback_is_sent_again_on_the_next_connection() -> None:
    seen: list[list[Request]] = [[], []]

    async def withholds_the_suback(link: PeerLink) -> None:
        link.send(connack(session_present=False))
        seen[0].append(await link.next_request())  # then close: the SUBACK never comes

    async def resumes_the_session(link: PeerLink) -> None:
        link.send(connack(session_present=True))
        request = await link.next_request()
        seen[1].append(request)
        link.send(reply(request))
        link.send(publish("lost/sub", b"after the re-SUBSCRIBE"))
        await link.serve()

    async with (
        ScriptedPeer(withholds_the_suback, resumes_the_session) as peer,
        _conn(peer.port) as conn,
    ):
        got = Recorder(conn.messages("lost/sub", qos=1))
        await got.wait_for_count(1, DEADLINE)
    assert seen[0] == [Request(SUBSCRIBE, seen[0][0].packet_id, (("lost/sub", 1),))]
    assert [(r.kind, r.filters) for r in seen[1]] == [(SUBSCRIBE, (("lost/sub", 1),))]
    assert got.items == [Message("lost/sub", b"after the re-SUBSCRIBE")]


async def test_an_unsubscribe_lost_before_its_unsuback_is_sent_again_on_the_resumed_session() -> (
    None
):
    subscribed, resent = asyncio.Event(), asyncio.Event()
    seen: list[list[Request]] = [[], []]

    async def withholds_the_unsuback(link: PeerLink) -> None:
        link.send(connack(session_present=False))
        request = await link.next_request()
        link.send(reply(request))
        subscribed.set()
        seen[0].append(await link.next_request())  # the UNSUBSCRIBE; then close

    async def resumes_the_session(link: PeerLink) -> None:
        link.send(connack(session_present=True))
        request = await link.next_request()
        seen[1].append(request)
        link.send(reply(request))
        resent.set()
        await link.serve()

    async with (
        ScriptedPeer(withholds_the_unsuback, resumes_the_session) as peer,
        _conn(peer.port) as conn,
    ):
        subscription = conn.messages("stale/#", qos=1).subscribe()
        await asyncio.wait_for(subscribed.wait(), DEADLINE)
        subscription.dispose()
        await asyncio.wait_for(resent.wait(), DEADLINE)
    assert [(r.kind, r.filters) for r in seen[0]] == [(UNSUBSCRIBE, (("stale/#", 0),))]
    assert [(r.kind, r.filters) for r in seen[1]] == [(UNSUBSCRIBE, (("stale/#", 0),))]


async def test_changes_during_an_outage_reach_the_resumed_session_as_their_net_effect() -> None:
    """subscribe -> unsubscribe -> subscribe (at another QoS) during an outage ends subscribed
    at the last QoS; a filter disposed during the outage is unsubscribed (also one subscribed and
    disposed within it: an earlier process may have left it in the session)."""
    subscribed, back_online = asyncio.Event(), asyncio.Event()
    resumed: list[Request] = []
    sentinel_seen = asyncio.Event()

    async def then_the_link_drops(link: PeerLink) -> None:
        link.send(connack(session_present=False))
        link.send(reply(await link.next_request()))
        subscribed.set()

    async def resumes_when_told(link: PeerLink) -> None:
        await back_online.wait()
        link.send(connack(session_present=True))
        while True:
            request = await link.next_request()
            resumed.append(request)
            link.send(reply(request))
            if ("sentinel", 0) in request.filters:
                sentinel_seen.set()

    async with (
        ScriptedPeer(then_the_link_drops, resumes_when_told) as peer,
        _conn(peer.port) as conn,
    ):
        a1 = conn.messages("a", qos=1).subscribe()
        b = conn.messages("b", qos=1).subscribe()
        await asyncio.wait_for(subscribed.wait(), DEADLINE)
        await conn.wait_for(ConnectionState.RECONNECTING, DEADLINE)
        b.dispose()
        a1.dispose()
        conn.messages("a", qos=2).subscribe()
        conn.messages("c", qos=1).subscribe().dispose()
        back_online.set()
        await conn.wait_for(ConnectionState.CONNECTED, DEADLINE)
        conn.messages("sentinel").subscribe()  # sent after whatever the CONNACK released
        await asyncio.wait_for(sentinel_seen.wait(), DEADLINE)
    assert [(r.kind, r.filters) for r in resumed] == [
        (UNSUBSCRIBE, (("b", 0), ("c", 0))),
        (SUBSCRIBE, (("a", 2),)),
        (SUBSCRIBE, (("sentinel", 0),)),
    ]


async def test_a_lost_session_gets_the_live_filters_and_no_stale_unsubscribe() -> None:
    """With session_present 0 the broker holds nothing: an UNSUBSCRIBE still owed is moot."""
    subscribed, resent = asyncio.Event(), asyncio.Event()
    resumed: list[Request] = []

    async def withholds_the_unsuback(link: PeerLink) -> None:
        link.send(connack(session_present=False))
        link.send(reply(await link.next_request()))
        subscribed.set()
        await link.next_request()  # the UNSUBSCRIBE; then close without UNSUBACK

    async def lost_the_session(link: PeerLink) -> None:
        link.send(connack(session_present=False))
        request = await link.next_request()
        resumed.append(request)
        link.send(reply(request))
        resent.set()
        await link.serve()

    async with (
        ScriptedPeer(withholds_the_unsuback, lost_the_session) as peer,
        _conn(peer.port) as conn,
    ):
        conn.messages("keep", qos=1).subscribe()
        stale = conn.messages("stale", qos=1).subscribe()
        await asyncio.wait_for(subscribed.wait(), DEADLINE)
        stale.dispose()
        await asyncio.wait_for(resent.wait(), DEADLINE)
    assert [(r.kind, r.filters) for r in resumed] == [(SUBSCRIBE, (("keep", 1),))]


async def test_a_refused_unsubscribe_is_logged_with_its_reason_code_and_not_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    requests: list[Request] = []
    refused = asyncio.Event()

    async def refuses_the_unsubscribe(link: PeerLink) -> None:
        link.send(connack(session_present=False))
        link.send(reply(await link.next_request()))
        while True:
            request = await link.next_request()
            requests.append(request)
            link.send(reply(request, b"\x87" if request.kind == UNSUBSCRIBE else None))
            if ("sentinel", 0) in request.filters:
                link.send(publish("sentinel", b"after the UNSUBACK and the SUBACK"))
            refused.set()

    async with (
        ScriptedPeer(refuses_the_unsubscribe) as peer,
        _conn(peer.port) as conn,
    ):
        subscription = conn.messages("guarded", qos=1).subscribe()
        await conn.wait_for(ConnectionState.CONNECTED, DEADLINE)
        subscription.dispose()
        await asyncio.wait_for(refused.wait(), DEADLINE)
        sentinel = Recorder(conn.messages("sentinel"))  # what follows the refusal on the wire
        await sentinel.wait_for_count(1, DEADLINE)
    assert [(r.kind, r.filters) for r in requests] == [
        (UNSUBSCRIBE, (("guarded", 0),)),
        (SUBSCRIBE, (("sentinel", 0),)),
    ]
    (warning,) = [r for r in caplog.records if "refused to UNSUBSCRIBE" in r.message]
    assert "'guarded': 0x87" in warning.message


# ---------------------------------------------------------------- against Mosquitto


def _session(port: int, client_id: str) -> ConnectionSettings:
    return ConnectionSettings(
        host="127.0.0.1", port=port, client_id=client_id, clean_start=False, session_expiry=3600
    )


async def _request_swallowed(proxy: FaultProxy, before: int) -> None:
    """Wait until the client wrote more bytes into the black hole than ``before``."""
    for _ in range(500):
        if proxy.connections and proxy.connections[0].bytes_from_client > before:
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("the client sent nothing into the black hole")


async def _cut_in_flight(sub: Connection, proxy: FaultProxy, request: Callable[[], object]) -> None:
    """Make ``request`` on a link that swallows it, then reset the link and wait for the
    resumed session."""
    events = Recorder(sub.lifecycle)
    before = proxy.connections[0].bytes_from_client
    proxy.blackhole()
    request()
    await _request_swallowed(proxy, before)
    proxy.pass_through()
    proxy.reset()
    await events.wait_for_item(lambda e: type(e).__name__ == "Connected", DEADLINE, "reconnect")


@pytest.mark.broker
async def test_on_mosquitto_a_lost_unsubscribe_is_resent_and_the_session_stops_queueing_it(
    rxmqtt_mosquitto: MosquittoBroker, rxmqtt_fault_proxy: FaultProxy
) -> None:
    client_id = f"converge-mq-{next(_ids)}"
    async with (
        Connection(_session(rxmqtt_fault_proxy.port, client_id), reconnect=FAST_NO_JITTER) as sub,
        Connection(
            _session(rxmqtt_mosquitto.port, f"{client_id}-pub"), reconnect=FAST_NO_JITTER
        ) as pub,
    ):
        keep = Recorder(sub.messages("conv/keep", qos=1))
        stale = Recorder(sub.messages("conv/stale", qos=1))
        await until_delivered(pub, keep, "conv/keep", wait=0.2)
        await until_delivered(pub, stale, "conv/stale", wait=0.2)
        await _cut_in_flight(sub, rxmqtt_fault_proxy, stale.dispose)
        await until_delivered(
            pub, Recorder(sub.messages("conv/probe", qos=1)), "conv/probe", wait=0.2
        )
    # The app is down; its session stays. Only what it still subscribes to may be queued.
    async with Connection(_session(rxmqtt_mosquitto.port, f"{client_id}-pub2")) as pub:
        await pub.wait_for(ConnectionState.CONNECTED, DEADLINE)
        await pub.publish("conv/stale", b"must not be queued", qos=1)
        await pub.publish("conv/keep", b"queued", qos=1)
    restarted = Connection(_session(rxmqtt_mosquitto.port, client_id), reconnect=FAST_NO_JITTER)
    unmatched = Recorder(restarted.unmatched_messages)
    dropped = Recorder(restarted.dropped)
    async with restarted:
        kept = Recorder(restarted.messages("conv/keep", qos=1))
        await kept.wait_for_item(lambda m: m.payload == b"queued", DEADLINE)
    assert unmatched.items == [], "the broker kept conv/stale"
    assert dropped.items == [], "the broker kept conv/stale"
    unsubscribes = rxmqtt_mosquitto.log_text().count(f"Received UNSUBSCRIBE from {client_id}")
    assert unsubscribes == 1, "the black hole swallowed the first; the resumed session's came"


@pytest.mark.broker
async def test_on_mosquitto_a_lost_subscribe_is_resent_on_the_resumed_session(
    rxmqtt_mosquitto: MosquittoBroker, rxmqtt_fault_proxy: FaultProxy
) -> None:
    client_id = f"converge-mq-{next(_ids)}"
    async with (
        Connection(_session(rxmqtt_fault_proxy.port, client_id), reconnect=FAST_NO_JITTER) as sub,
        Connection(
            _session(rxmqtt_mosquitto.port, f"{client_id}-pub"), reconnect=FAST_NO_JITTER
        ) as pub,
    ):
        first = Recorder(sub.messages("conv/first", qos=1))
        await until_delivered(pub, first, "conv/first", wait=0.2)
        late: list[Recorder[Message]] = []
        await _cut_in_flight(
            sub, rxmqtt_fault_proxy, lambda: late.append(Recorder(sub.messages("conv/late", 1)))
        )
        await until_delivered(pub, late[0], "conv/late", wait=0.2)
    subscribes = rxmqtt_mosquitto.log_text().count(f"Received SUBSCRIBE from {client_id}")
    assert subscribes == 2, "conv/first, then conv/late on the resumed session (once)"


@pytest.mark.broker
async def test_on_mosquitto_changes_during_an_outage_leave_the_broker_with_what_messages_holds(
    rxmqtt_mosquitto: MosquittoBroker, rxmqtt_fault_proxy: FaultProxy
) -> None:
    client_id = f"converge-mq-{next(_ids)}"
    proxy = rxmqtt_fault_proxy
    sub = Connection(
        _session(proxy.port, client_id),
        reconnect=FAST_NO_JITTER,
        grace_period=GracePeriod(seconds=0),
    )
    unmatched = Recorder(sub.unmatched_messages)
    async with (
        sub,
        Connection(
            _session(rxmqtt_mosquitto.port, f"{client_id}-pub"), reconnect=FAST_NO_JITTER
        ) as pub,
    ):
        a1 = Recorder(sub.messages("race/a", qos=1))
        b = Recorder(sub.messages("race/b", qos=1))
        await until_delivered(pub, a1, "race/a", wait=0.2)
        await until_delivered(pub, b, "race/b", wait=0.2)
        proxy.refuse()
        proxy.reset()
        await sub.wait_for(ConnectionState.RECONNECTING, DEADLINE)
        b.dispose()
        a1.dispose()
        a2 = Recorder(sub.messages("race/a", qos=1))
        Recorder(sub.messages("race/c", qos=1)).dispose()
        proxy.accept()
        await until_delivered(
            pub, Recorder(sub.messages("race/probe", qos=1)), "race/probe", wait=0.2
        )
        for topic in ("race/b", "race/c", "race/a"):
            await pub.publish(topic, b"after", qos=1)
        await a2.wait_for_item(lambda m: m.payload == b"after", DEADLINE)
    assert [m.topic for m in unmatched.items if m.payload == b"after"] == []
