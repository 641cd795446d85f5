"""A malformed or hostile peer: a fake MQTT server on loopback misbehaves after the CONNECT.

Every case must end in a ``ConnectFailed`` (before a successful CONNACK) or ``Disconnected``
(after it) on ``conn.lifecycle`` whose ``Disconnect.source`` says who was at fault -- CLIENT for a
protocol error this client detected, SERVER for a refusing CONNACK, NETWORK for a closed socket,
KEEPALIVE for a silent peer -- within a deadline (never a hang), with nothing reaching the event
loop's exception handler and nothing logged at ERROR by rxmqtt (an exception swallowed by
paho's callback guard is a crash too).

The client advertises ``maximum_packet_size=1024`` and ``keep_alive=1``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

import pytest

from rxmqtt import (
    Backoff,
    ConnectFailed,
    Connection,
    ConnectionSettings,
    Disconnect,
    Disconnected,
    DisconnectSource,
    Jitter,
    LifecycleEvent,
    Message,
    ReconnectPolicy,
)
from rxmqtt.testing._peer import PeerLink, Script, ScriptedPeer, connack, publish
from rxmqtt.testing._raw import packet, varint
from rxmqtt.testing.recorder import Recorder
from tests._helpers import loop_exceptions

MAX_PACKET = 1024
DEADLINE = 15.0
"""The outcome must arrive well within this (KEEPALIVE takes ~1.4 s; generous for a loaded
machine)."""

CLOSE = b"<close>"
RESET = b"<reset>"


CONNACK_OK = connack()


@dataclass(frozen=True)
class Case:
    """What the fake server sends after it read the CONNECT (then it stays silent, reading and
    discarding whatever the client sends, unless told to close or reset)."""

    script: tuple[bytes, ...]
    kind: type[ConnectFailed] | type[Disconnected]
    source: DisconnectSource
    reason_code: int | None = None


CASES = [
    pytest.param(
        Case((b"\x00\x05hello",), ConnectFailed, DisconnectSource.CLIENT),
        id="garbage-after-connect",
    ),
    pytest.param(
        Case((packet(0x20, b"\x00"),), ConnectFailed, DisconnectSource.CLIENT),
        id="connack-too-short",
    ),
    pytest.param(
        Case((connack(0x87),), ConnectFailed, DisconnectSource.SERVER, 0x87),
        id="connack-not-authorized",
    ),
    pytest.param(
        Case((connack(0xA5),), ConnectFailed, DisconnectSource.SERVER, 0xA5),
        id="connack-unknown-reason-code",
    ),
    pytest.param(
        Case((CONNACK_OK,), Disconnected, DisconnectSource.KEEPALIVE, 0x8D),
        id="connack-then-silence",
    ),
    pytest.param(
        Case(
            (CONNACK_OK, publish(b"big", b"x" * 2 * MAX_PACKET)),
            Disconnected,
            DisconnectSource.CLIENT,
            0x95,
        ),
        id="publish-over-maximum-packet-size",
    ),
    pytest.param(
        Case(
            (CONNACK_OK, b"\x30" + varint(10_000_000) + b"\x00\x03big"),
            Disconnected,
            DisconnectSource.CLIENT,
            0x95,
        ),
        id="bogus-10mb-remaining-length",
    ),
    pytest.param(
        Case(
            (CONNACK_OK, publish(b"t", b"x" * 100)[:20], CLOSE),
            Disconnected,
            DisconnectSource.NETWORK,
        ),
        id="truncated-publish-then-close",
    ),
    pytest.param(
        Case((CONNACK_OK[:3], CLOSE), ConnectFailed, DisconnectSource.NETWORK),
        id="truncated-connack-then-close",
    ),
    pytest.param(
        Case((CONNACK_OK, RESET), Disconnected, DisconnectSource.NETWORK),
        id="reset-after-connack",
    ),
    pytest.param(
        Case((CONNACK_OK, publish(b"\xff\xfe/t", b"x")), Disconnected, DisconnectSource.CLIENT),
        id="publish-invalid-utf8-topic-qos0",
    ),
    pytest.param(
        Case(
            (CONNACK_OK, publish(b"a/\xc3(", b"x", qos=1)),
            Disconnected,
            DisconnectSource.CLIENT,
        ),
        id="publish-invalid-utf8-topic-qos1",
    ),
]


def playing(chunks: tuple[bytes, ...]) -> Script:
    """A fake server that sends ``chunks`` on every connection (the peer counts any PUBACK)."""

    async def script(link: PeerLink) -> None:
        for chunk in chunks:
            if chunk is CLOSE:
                return  # (the peer closes the connection when the script ends)
            if chunk is RESET:
                link.abort()
                return
            link.send(chunk)
            await link.drain()
        while True:  # silence: read and discard (PINGREQ unanswered, PUBACK, DISCONNECT, ...)
            await link.read_raw()

    return script


async def _first_failure(
    script: tuple[bytes, ...], caplog: pytest.LogCaptureFixture
) -> tuple[ConnectFailed | Disconnected, list[LifecycleEvent], list[Message], ScriptedPeer]:
    """Connect to a fake server playing ``script``; return the first failure event."""
    caplog.set_level(logging.WARNING)
    async with ScriptedPeer(playing(script)) as peer:
        conn = Connection(
            ConnectionSettings(
                host="127.0.0.1",
                port=peer.port,
                client_id="hostile-peer",
                keep_alive=1,
                connect_timeout=5.0,
                maximum_packet_size=MAX_PACKET,
            ),
            reconnect=ReconnectPolicy(
                backoff=Backoff(initial=0.5, maximum=1.0, jitter=Jitter.NONE)
            ),
        )
        events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
        messages: Recorder[Message] = Recorder(conn.messages("#"))
        with loop_exceptions() as crashes:
            conn.start()
            failure = await events.wait_for_item(
                lambda e: isinstance(e, ConnectFailed | Disconnected), DEADLINE, "a failure"
            )
            await asyncio.wait_for(conn.close(), DEADLINE)
            await asyncio.sleep(0)  # let anything scheduled by close() run under the handler
    assert not crashes, f"exceptions reached the event loop: {crashes}"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, f"logged at ERROR: {[r.getMessage() for r in errors]}"
    assert isinstance(failure, ConnectFailed | Disconnected)
    return failure, events.items, messages.items, peer


@pytest.mark.parametrize("case", CASES)
async def test_hostile_peer_ends_in_a_disconnect_with_the_right_source(
    case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    failure, events, messages, peer = await _first_failure(case.script, caplog)
    disconnect: Disconnect = failure.disconnect
    assert isinstance(failure, case.kind), f"{failure!r} (all events: {events})"
    assert disconnect.source is case.source, f"{disconnect!r}"
    if case.reason_code is not None:
        assert disconnect.reason_code == case.reason_code, f"{disconnect!r}"
    assert not messages, f"a message from a malformed packet was delivered: {messages}"
    assert not peer.pubacks, f"the client acknowledged a malformed packet: {peer.pubacks}"


@pytest.mark.parametrize("seed", range(20))
async def test_random_bytes_after_connect_never_crash_or_hang(
    seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Seeded random blobs (some starting like a CONNACK, so the parser goes deeper) and then a
    close: whatever the bytes, the attempt or the connection ends, no exception escapes."""
    rng = random.Random(seed)
    blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    if seed % 2:
        blob = bytes([0x20, rng.randrange(2, 40), 0x00, rng.choice([0x00, 0x80, 0x9F])]) + blob
    failure, _, _, _ = await _first_failure((blob, CLOSE), caplog)
    assert failure.disconnect.source in (
        DisconnectSource.CLIENT,
        DisconnectSource.NETWORK,
        DisconnectSource.SERVER,
    ), f"blob {blob!r}: {failure!r}"
