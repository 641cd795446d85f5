"""PublishRetry: a late ack drops the link and the message is re-sent on the next connection;
a transient refusal (quota exceeded, server busy) is re-published after backoff."""

from __future__ import annotations

import asyncio

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
from rxmqtt.testing.recorder import Recorder
from tests._helpers import FAST

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
        await _until_subscribed(pub, got)
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


async def _until_subscribed(pub: Connection, got: Recorder[object]) -> None:
    for _ in range(100):
        await pub.publish("ack/probe", b"probe", qos=1)
        try:
            await got.wait_for_item(lambda m: m.payload == b"probe", 0.1)  # type: ignore[attr-defined]
            return
        except TimeoutError:
            continue
    raise TimeoutError("subscription never became live")


class _RefusingBroker:
    """A minimal MQTT 5 broker on loopback that answers the first ``refusals`` QoS 1 PUBLISHes
    with PUBACK ``code`` and the rest with success, counting what it received."""

    def __init__(self, refusals: int, code: int) -> None:
        self.refusals = refusals
        self.code = code
        self.publishes = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(1)
                length = 0
                for shift in range(0, 28, 7):
                    byte = (await reader.readexactly(1))[0]
                    length |= (byte & 0x7F) << shift
                    if not byte & 0x80:
                        break
                body = await reader.readexactly(length)
                kind = header[0] >> 4
                if kind == 1:  # CONNECT
                    writer.write(b"\x20\x03\x00\x00\x00")
                elif kind == 3:  # PUBLISH (QoS 1 assumed)
                    topic_len = int.from_bytes(body[:2], "big")
                    packet_id = body[2 + topic_len : 4 + topic_len]
                    self.publishes += 1
                    code = self.code if self.publishes <= self.refusals else 0
                    writer.write(b"\x40\x04" + packet_id + bytes([code, 0]))
                elif kind == 12:  # PINGREQ
                    writer.write(b"\xd0\x00")
                elif kind == 14:  # DISCONNECT
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.mark.parametrize(("code", "refusals"), [(0x97, 2), (0x89, 1)])
async def test_transient_refusal_is_republished_after_backoff(code: int, refusals: int) -> None:
    broker = _RefusingBroker(refusals=refusals, code=code)
    port = await broker.start()
    try:
        conn = Connection(
            ConnectionSettings(host="127.0.0.1", port=port, client_id="refused"),
            publish_retry=PublishRetry(max_attempts=3, backoff=Backoff(0.01, 0.05)),
        )
        async with conn:
            await conn.wait_for(ConnectionState.CONNECTED, 5)
            result = await conn.publish("busy/x", b"v", qos=1)
        assert result.reason_code == 0
        assert broker.publishes == refusals + 1
    finally:
        await broker.close()


async def test_refusals_past_max_attempts_error_with_the_last_code() -> None:
    broker = _RefusingBroker(refusals=100, code=0x97)
    port = await broker.start()
    try:
        conn = Connection(
            ConnectionSettings(host="127.0.0.1", port=port, client_id="refused-2"),
            publish_retry=PublishRetry(max_attempts=2, backoff=Backoff(0.01, 0.05)),
        )
        async with conn:
            await conn.wait_for(ConnectionState.CONNECTED, 5)
            with pytest.raises(PublishError) as caught:
                await conn.publish("busy/x", b"v", qos=1)
        assert caught.value.reason_code == 0x97
        assert broker.publishes == 3, "first send + 2 retries"
    finally:
        await broker.close()
