"""PublishRetry: a late ack drops the link and the message is re-sent on the next connection;
a transient refusal (quota exceeded, server busy) is re-published after backoff."""

from __future__ import annotations

import pytest

from rxmqtt import (
    Backoff,
    Connection,
    ConnectionSettings,
    ConnectionState,
    Disconnected,
    DisconnectSource,
    PublishError,
    PublishRetry,
)
from rxmqtt.testing import FaultProxy, MosquittoBroker
from rxmqtt.testing._peer import (
    PUBACK,
    PUBLISH,
    PeerLink,
    Script,
    ScriptedPeer,
    ack,
    connack,
    parse_publish,
)
from rxmqtt.testing.recorder import Recorder
from tests._helpers import FAST, until_delivered

pytestmark = pytest.mark.broker


@pytest.mark.parametrize("qos", [1, 2])
async def test_ack_timeout_reconnects_and_resends(
    rxmqtt_mosquitto: MosquittoBroker, rxmqtt_fault_proxy: FaultProxy, qos: int
) -> None:
    """The PUBLISH reaches the broker but its ack is too slow: the client declares the link dead
    (source CLIENT), reconnects and re-sends with DUP. QoS 2 arrives exactly once, QoS 1 at
    least once."""
    sub = Connection(
        ConnectionSettings(
            host=rxmqtt_mosquitto.host, port=rxmqtt_mosquitto.port, client_id=f"ack-sub-{qos}"
        ),
        reconnect=FAST,
    )
    got = Recorder(sub.messages("ack/#", qos=2))
    pub = Connection(
        ConnectionSettings(
            host=rxmqtt_fault_proxy.host, port=rxmqtt_fault_proxy.port, client_id=f"ack-pub-{qos}"
        ),
        reconnect=FAST,
        publish_retry=PublishRetry(ack_timeout=0.6),
    )
    events = Recorder(pub.lifecycle)
    async with sub, pub:
        await sub.wait_for(ConnectionState.CONNECTED, 5)
        await pub.wait_for(ConnectionState.CONNECTED, 5)
        await until_delivered(pub, got, "ack/probe")
        rxmqtt_fault_proxy.delay(1.5)  # each direction: the ack would come after ~3 s
        outcome = Recorder(pub.publish("ack/x", b"once", qos=qos))
        lost = await events.wait_for_item(lambda e: isinstance(e, Disconnected), 5)
        assert isinstance(lost, Disconnected)
        assert lost.disconnect.source is DisconnectSource.CLIENT
        assert "no acknowledgement" in lost.disconnect.reason
        rxmqtt_fault_proxy.delay(0)
        await outcome.wait_done(10)
        assert outcome.error is None, outcome.error
        await got.wait_for_item(lambda m: m.payload == b"once", 10)
        # a marker published after proves nothing else is still on its way
        await pub.publish("ack/marker", b"marker", qos=1)
        await got.wait_for_item(lambda m: m.payload == b"marker", 5)
        copies = sum(m.payload == b"once" for m in got.items)
        if qos == 2:
            assert copies == 1, "QoS 2 exactly once across the reconnect"
        else:
            assert copies >= 1


def _refusing(refusals: int, code: int, publishes: list[int]) -> Script:
    """A peer that answers the first ``refusals`` QoS 1 PUBLISHes with PUBACK ``code`` and the
    rest with success, recording the packet id of each PUBLISH it received in ``publishes``."""

    async def script(link: PeerLink) -> None:
        link.send(connack())
        while True:
            received = parse_publish(await link.read_until(PUBLISH))
            publishes.append(received.packet_id)
            answer = code if len(publishes) <= refusals else 0
            link.send(ack(PUBACK, received.packet_id, answer))

    return script


def _on(peer: ScriptedPeer, client_id: str, max_attempts: int) -> Connection:
    settings = ConnectionSettings(host="127.0.0.1", port=peer.port, client_id=client_id)
    retry = PublishRetry(max_attempts=max_attempts, backoff=Backoff(0.01, 0.05))
    return Connection(settings, publish_retry=retry)


@pytest.mark.parametrize(("code", "refusals"), [(0x97, 2), (0x89, 1)])
async def test_transient_refusal_is_republished_after_backoff(code: int, refusals: int) -> None:
    publishes: list[int] = []
    async with (
        ScriptedPeer(_refusing(refusals, code, publishes)) as peer,
        _on(peer, "refused", max_attempts=3) as conn,
    ):
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        result = await conn.publish("busy/x", b"v", qos=1)
    assert result.reason_code == 0
    assert len(publishes) == refusals + 1


async def test_refusals_past_max_attempts_error_with_the_last_code() -> None:
    publishes: list[int] = []
    async with (
        ScriptedPeer(_refusing(100, 0x97, publishes)) as peer,
        _on(peer, "refused-2", max_attempts=2) as conn,
    ):
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        with pytest.raises(PublishError) as caught:
            await conn.publish("busy/x", b"v", qos=1)
    assert caught.value.reason_code == 0x97
    assert len(publishes) == 3, "first send + 2 retries"
