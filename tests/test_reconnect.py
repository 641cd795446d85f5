"""The reconnect loop against a real Mosquitto: attempts, waits, giving up, live policy changes."""

from __future__ import annotations

import socket

import pytest

from rxmqtt import (
    Backoff,
    ConnectFailed,
    Connecting,
    Connection,
    ConnectionSettings,
    ConnectionState,
    GaveUp,
    Jitter,
    ReconnectPolicy,
)
from rxmqtt.testing import MosquittoBroker
from rxmqtt.testing.recorder import Recorder

pytestmark = pytest.mark.broker


def _dead_port() -> int:
    """A loopback port with nothing listening (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settings(port: int, client_id: str, **kw: object) -> ConnectionSettings:
    return ConnectionSettings(host="127.0.0.1", port=port, client_id=client_id, **kw)  # type: ignore[arg-type]


async def test_every_attempt_and_wait_is_on_lifecycle_until_attempts_run_out(
    mqtt_version: int,
) -> None:
    policy = ReconnectPolicy(
        backoff=Backoff(initial=0.01, maximum=0.04, jitter=Jitter.NONE), max_attempts=3
    )
    conn = Connection(
        _settings(_dead_port(), "exhaust", protocol_version=mqtt_version), reconnect=policy
    )
    events = Recorder(conn.lifecycle)
    async with conn:
        await conn.wait_for(ConnectionState.FAILED, 5)
    attempts = [e for e in events.items if isinstance(e, Connecting)]
    failures = [e for e in events.items if isinstance(e, ConnectFailed)]
    assert [a.attempt for a in attempts] == [1, 2, 3, 4], "the first try plus 3 retries"
    assert [f.retry_in for f in failures] == [0.01, 0.02, 0.04, None]
    assert all(f.disconnect.source.value == "network" for f in failures)
    assert all(f.reason_code == (0x80 if mqtt_version == 5 else None) for f in failures)
    gave_up = [e for e in events.items if isinstance(e, GaveUp)]
    assert len(gave_up) == 1
    assert "gave up after 3 retries" in gave_up[0].reason


async def test_retry_first_connect_false_gives_up_on_the_first_failure() -> None:
    policy = ReconnectPolicy(backoff=Backoff(0.01, 0.02), retry_first_connect=False)
    conn = Connection(_settings(_dead_port(), "no-first-retry"), reconnect=policy)
    events = Recorder(conn.lifecycle)
    async with conn:
        await conn.wait_for(ConnectionState.FAILED, 5)
    assert sum(isinstance(e, Connecting) for e in events.items) == 1
    gave_up = next(e for e in events.items if isinstance(e, GaveUp))
    assert "retry_first_connect" in gave_up.reason


async def test_configure_cuts_a_long_wait_short_and_revives_a_failed_connection(
    rxmqtt_mosquitto: MosquittoBroker, mqtt_version: int
) -> None:
    slow = ReconnectPolicy(backoff=Backoff(initial=60.0, maximum=60.0, jitter=Jitter.NONE))
    conn = Connection(
        _settings(rxmqtt_mosquitto.port, "configure", protocol_version=mqtt_version), reconnect=slow
    )
    events = Recorder(conn.lifecycle)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        rxmqtt_mosquitto.stop()
        await events.wait_for_item(lambda e: getattr(e, "retry_in", None) == 60.0, 5)
        rxmqtt_mosquitto.start()
        # Without configure() the next attempt would be a minute away.
        conn.configure(reconnect=ReconnectPolicy(backoff=Backoff(0.01, 0.05)))
        await conn.wait_for(ConnectionState.CONNECTED, 5)

        rxmqtt_mosquitto.stop()
        conn.configure(reconnect=ReconnectPolicy(backoff=Backoff(0.01, 0.02), max_attempts=0))
        await conn.wait_for(ConnectionState.FAILED, 5)
        rxmqtt_mosquitto.start()
        conn.configure(reconnect=ReconnectPolicy(backoff=Backoff(0.01, 0.05)))
        await conn.wait_for(ConnectionState.CONNECTED, 5)


async def test_configure_keeps_a_live_connection(
    rxmqtt_mosquitto: MosquittoBroker, mqtt_version: int
) -> None:
    conn = Connection(_settings(rxmqtt_mosquitto.port, "keep-live", protocol_version=mqtt_version))
    events = Recorder(conn.lifecycle)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        before = len(events.items)
        conn.configure(reconnect=ReconnectPolicy(backoff=Backoff(0.1, 1.0), max_attempts=5))
        result = await conn.publish("keep/x", b"1", qos=1)
        assert result.reason_code in (0, 0x10)
        assert events.items[before:] == [], "no reconnect: the live connection was adopted"


async def test_failed_attempts_rotate_through_endpoints(rxmqtt_mosquitto: MosquittoBroker) -> None:
    settings = ConnectionSettings(
        host="127.0.0.1",
        port=_dead_port(),
        client_id="rotate",
        endpoints=[f"127.0.0.1:{rxmqtt_mosquitto.port}"],
    )
    conn = Connection(settings, reconnect=ReconnectPolicy(backoff=Backoff(0.01, 0.02)))
    events = Recorder(conn.lifecycle)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
    tried = [e.endpoint for e in events.items if isinstance(e, Connecting)]
    assert tried == [f"127.0.0.1:{settings.port}", f"127.0.0.1:{rxmqtt_mosquitto.port}"]
