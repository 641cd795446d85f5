"""Deterministic reproductions of what the chaos run found by chance: how unacknowledged QoS 1/2
publishes are re-sent after a reconnect.

MQTT 5 4.4 / 4.6: on a reconnect with a session, the client re-sends its unacknowledged PUBLISH
and PUBREL packets with their original packet ids, in their original order ([MQTT-4.6.0-1]), and
"MUST NOT re-send the PUBLISH once it has sent the corresponding PUBREL" (4.3.3). With
``Drain.FIFO`` the offline queue is drained after them, so a subscriber sees publish order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from rxmqtt import (
    Connection,
    ConnectionSettings,
    ConnectionState,
    Message,
    PublishResult,
)
from rxmqtt.testing import FaultProxy, MosquittoBroker
from rxmqtt.testing._raw import read_packet, varint_at
from rxmqtt.testing.recorder import Recorder
from tests._helpers import FAST, until_delivered

# ---------------------------------------------------------------------------------------------
# in-flight re-sends go out before the offline queue


@pytest.mark.broker
@pytest.mark.parametrize("qos", [1, 2])
async def test_in_flight_resends_precede_the_offline_queue(
    rxmqtt_mosquitto: MosquittoBroker, rxmqtt_fault_proxy: FaultProxy, qos: int
) -> None:
    """0-4 are written to a link that silently died (never reach the broker); 5-9 are published
    while offline (queued). After the reconnect the subscriber must see 0..9 in order: paho's
    re-sends of 0-4 first, then the FIFO drain of 5-9."""
    sub = Connection(
        ConnectionSettings(
            host=rxmqtt_mosquitto.host, port=rxmqtt_mosquitto.port, client_id=f"rs-sub-{qos}"
        ),
        reconnect=FAST,
    )
    got: Recorder[Message] = Recorder(sub.messages("rs/#", qos=2))
    pub = Connection(
        ConnectionSettings(
            host=rxmqtt_fault_proxy.host,
            port=rxmqtt_fault_proxy.port,
            client_id=f"rs-pub-{qos}",
            clean_start=False,
            session_expiry=300,
        ),
        reconnect=FAST,
    )
    async with sub, pub:
        await sub.wait_for(ConnectionState.CONNECTED, 10)
        await pub.wait_for(ConnectionState.CONNECTED, 10)
        await until_delivered(pub, got, "rs/probe")
        got.items.clear()
        (link,) = rxmqtt_fault_proxy.wait_for_connections(1)
        link.blackhole()  # the link is dead but the socket stays open: 0-4 vanish in it
        before = link.bytes_from_client
        lost = [Recorder(pub.publish("rs/x", str(i).encode(), qos=qos)) for i in range(5)]
        # five PUBLISH packets of >= 12 bytes each left the client (and were discarded)
        await _until(lambda: link.bytes_from_client - before >= 60, 10, "0-4 written")
        rxmqtt_fault_proxy.refuse()
        link.reset()
        await pub.wait_for(ConnectionState.RECONNECTING, 10)
        queued = [Recorder(pub.publish("rs/x", str(i).encode(), qos=qos)) for i in range(5, 10)]
        rxmqtt_fault_proxy.accept()
        for outcome in lost + queued:
            await outcome.wait_done(15)
            assert outcome.error is None, outcome.error
        await got.wait_until(lambda ms: len({m.payload for m in ms}) >= 10, 10, "0..9")
    arrived = [int(m.payload) for m in got.items]
    firsts = list(dict.fromkeys(arrived))
    assert firsts == list(range(10)), f"arrival order {arrived}"


async def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# the QoS 2 handshake state survives failed reconnect attempts (a scripted fake broker)


@dataclass
class _Packet:
    kind: int
    flags: int
    body: bytes

    @property
    def packet_id(self) -> int:
        if self.kind == 3:  # PUBLISH: topic, then the id
            topic_len = int.from_bytes(self.body[:2], "big")
            return int.from_bytes(self.body[2 + topic_len : 4 + topic_len], "big")
        return int.from_bytes(self.body[:2], "big")

    def __repr__(self) -> str:
        names = {1: "CONNECT", 3: "PUBLISH", 6: "PUBREL", 8: "SUBSCRIBE", 12: "PINGREQ"}
        name = names.get(self.kind, str(self.kind))
        dup = " DUP" if self.kind == 3 and self.flags & 0x08 else ""
        return f"{name}{dup}(id={self.packet_id if self.kind in (3, 6) else '-'})"


async def _read_packet(reader: asyncio.StreamReader) -> _Packet:
    raw = await read_packet(reader)
    _, body = varint_at(raw, 1)
    return _Packet(raw[0] >> 4, raw[0] & 0x0F, raw[body:])


@dataclass
class _ScriptedBroker:
    """Connection 1: CONNACK, PUBREC every QoS 2 PUBLISH, and on ``cut_on`` close the socket
    (the broker's next packet is lost with it). Connections 2..``refusals``+1: close at once
    (failed attempts). After that: CONNACK with session present, answer everything, and
    record what the client re-sent."""

    cut_on: int
    """Packet type that ends connection 1: 3 (PUBLISH: PUBREC lost) or 6 (PUBREL: PUBCOMP
    lost)."""
    refusals: int
    connections: int = 0
    resent: list[_Packet] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        self.connections += 1
        number = self.connections
        try:
            connect = await _read_packet(reader)
            assert connect.kind == 1
            if 1 < number <= 1 + self.refusals:
                return  # a failed attempt: closed before CONNACK
            session_present = 0 if number == 1 else 1
            writer.write(bytes([0x20, 0x03, session_present, 0x00, 0x00]))
            while True:
                packet = await _read_packet(reader)
                if number > 1:
                    self.resent.append(packet)
                if number == 1 and packet.kind == self.cut_on:
                    return
                pid = packet.packet_id.to_bytes(2, "big")
                if packet.kind == 3 and (packet.flags >> 1) & 3 == 2:
                    writer.write(b"\x50\x02" + pid)  # PUBREC
                elif packet.kind == 6:
                    writer.write(b"\x70\x02" + pid)  # PUBCOMP
                elif packet.kind == 12:
                    writer.write(b"\xd0\x00")  # PINGRESP
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def stop(self, server: asyncio.Server) -> None:
        server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await server.wait_closed()


@pytest.mark.parametrize(
    ("cut_on", "refusals", "expected"),
    [
        pytest.param(6, 0, "PUBREL(id={id})", id="pubcomp-lost-reconnect-at-once"),
        pytest.param(6, 1, "PUBREL(id={id})", id="pubcomp-lost-one-failed-attempt"),
        pytest.param(6, 3, "PUBREL(id={id})", id="pubcomp-lost-three-failed-attempts"),
        pytest.param(3, 0, "PUBLISH DUP(id={id})", id="pubrec-lost-reconnect-at-once"),
        pytest.param(3, 2, "PUBLISH DUP(id={id})", id="pubrec-lost-two-failed-attempts"),
    ],
)
async def test_qos2_handshake_resumes_where_it_stopped(
    cut_on: int, refusals: int, expected: str
) -> None:
    """After PUBREL was sent (PUBCOMP lost) the client must re-send the PUBREL, never the
    PUBLISH -- the broker already forwarded the message and would forward it again -- however
    many connection attempts fail before the broker is back. (paho's reconnect reset is not
    idempotent: each ``connect()`` re-runs it, and a second run turns "re-send PUBREL" into
    "re-send PUBLISH".)"""
    script = _ScriptedBroker(cut_on=cut_on, refusals=refusals)
    server = await asyncio.start_server(script.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = Connection(
        ConnectionSettings(
            host="127.0.0.1",
            port=port,
            client_id="qos2-resume",
            clean_start=False,
            session_expiry=300,
        ),
        reconnect=FAST,
    )
    try:
        async with conn:
            await conn.wait_for(ConnectionState.CONNECTED, 10)
            outcome: Recorder[PublishResult] = Recorder(conn.publish("q2/x", b"once", qos=2))
            await outcome.wait_done(15)
            assert outcome.error is None, outcome.error
            assert len(outcome.items) == 1
    finally:
        await script.stop(server)
    assert script.connections == 2 + refusals
    publishes = [p for p in script.resent if p.kind in (3, 6)]
    assert publishes, f"nothing re-sent: {script.resent}"
    first = publishes[0]
    assert repr(first) == expected.format(id=first.packet_id), (
        f"after {refusals} failed attempt(s) the client re-sent {script.resent}"
    )
    if cut_on == 6:
        assert all(p.kind != 3 for p in script.resent), f"PUBLISH re-sent: {script.resent}"
