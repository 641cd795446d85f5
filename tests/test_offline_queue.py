"""The offline queue inside a real Connection: bounds, overflow, drain order, crashes, restarts.

The publisher reaches Mosquitto through a FaultProxy that is made to refuse connections, so it
is offline while an independent subscriber (connected directly) records what arrives.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rxmqtt import (
    Connection,
    ConnectionSettings,
    ConnectionState,
    Drain,
    DropReason,
    MessageDroppedError,
    Overflow,
    QueuePolicy,
    SessionLost,
)
from rxmqtt.queue import SqliteStore
from rxmqtt.testing import FaultProxy, MosquittoBroker
from rxmqtt.testing.recorder import Recorder
from tests._helpers import FAST

pytestmark = pytest.mark.broker


def _settings(host: str, port: int, client_id: str, **kw: object) -> ConnectionSettings:
    return ConnectionSettings(host=host, port=port, client_id=client_id, **kw)  # type: ignore[arg-type]


async def _live_subscriber(
    broker: MosquittoBroker, topic_filter: str, name: str
) -> tuple[Connection, Recorder[object]]:
    sub = Connection(_settings(broker.host, broker.port, name), reconnect=FAST)
    got: Recorder[object] = Recorder(sub.messages(topic_filter, qos=1))
    sub.start()
    await sub.wait_for(ConnectionState.CONNECTED, 5)
    probe = Connection(_settings(broker.host, broker.port, f"{name}-probe"))
    async with probe:
        await probe.wait_for(ConnectionState.CONNECTED, 5)
        for _ in range(100):
            await probe.publish(topic_filter.replace("#", "probe"), b"probe", qos=1)
            try:
                await got.wait_for_item(lambda m: m.payload == b"probe", 0.1)  # type: ignore[attr-defined]
                break
            except TimeoutError:
                continue
    got.items.clear()
    return sub, got


async def _go_offline(conn: Connection, proxy: FaultProxy) -> None:
    proxy.refuse()
    proxy.reset()
    await conn.wait_for(ConnectionState.RECONNECTING, 5)


def _payloads(got: Recorder[object]) -> list[int]:
    return [int(m.payload) for m in got.items if m.payload != b"probe"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("overflow", "kept", "reason"),
    [
        (Overflow.DROP_OLDEST, range(900, 1000), DropReason.OVERFLOW),
        (Overflow.DROP_NEWEST, range(0, 100), DropReason.OVERFLOW),
        (Overflow.REJECT, range(0, 100), DropReason.REJECTED),
    ],
)
async def test_1000_offline_publishes_into_a_queue_of_100(
    rxmqtt_mosquitto: MosquittoBroker,
    rxmqtt_fault_proxy: FaultProxy,
    overflow: Overflow,
    kept: range,
    reason: DropReason,
) -> None:
    sub, got = await _live_subscriber(rxmqtt_mosquitto, "q/#", f"sub-{overflow.name}")
    policy = QueuePolicy(max_messages=100, overflow=overflow)
    pub = Connection(
        _settings(rxmqtt_fault_proxy.host, rxmqtt_fault_proxy.port, f"pub-{overflow.name}"),
        reconnect=FAST,
        queue=policy,
    )
    dropped = Recorder(pub.dropped)
    async with pub:
        await pub.wait_for(ConnectionState.CONNECTED, 5)
        await _go_offline(pub, rxmqtt_fault_proxy)
        results = [Recorder(pub.publish("q/data", str(i).encode(), qos=1)) for i in range(1000)]
        assert len(dropped.items) == 900
        assert [int(d.message.payload) for d in dropped.items] == sorted(
            set(range(1000)) - set(kept)
        )
        assert {d.reason for d in dropped.items} == {reason}
        rxmqtt_fault_proxy.accept()
        await got.wait_until(lambda ms: len(ms) >= 100, 10, "the 100 kept messages")
        assert _payloads(got) == list(kept), "delivered in publish order"
        for i, outcome in enumerate(results):
            await outcome.wait_done(5)
            if i in kept:
                assert outcome.error is None
                assert outcome.items[0].reason_code in (0, 0x10)
            else:
                assert isinstance(outcome.error, MessageDroppedError)
                assert outcome.error.reason == reason.value
    await sub.close()


async def test_max_bytes_bounds_mixed_sizes(
    rxmqtt_mosquitto: MosquittoBroker, rxmqtt_fault_proxy: FaultProxy
) -> None:
    sub, got = await _live_subscriber(rxmqtt_mosquitto, "qb/#", "sub-bytes")
    topic = "qb/d"
    sizes = [10, 500, 40, 900, 5, 300, 700, 60, 2_000, 30]
    budget = 2_500
    pub = Connection(
        _settings(rxmqtt_fault_proxy.host, rxmqtt_fault_proxy.port, "pub-bytes"),
        reconnect=FAST,
        queue=QueuePolicy(max_messages=None, max_bytes=budget, overflow=Overflow.DROP_OLDEST),
    )
    stats = Recorder(pub.queue_stats)
    dropped = Recorder(pub.dropped)
    async with pub:
        await pub.wait_for(ConnectionState.CONNECTED, 5)
        await _go_offline(pub, rxmqtt_fault_proxy)
        for i, size in enumerate(sizes):
            pub.publish(topic, f"{i}:".encode().ljust(size, b"x"), qos=1)
        assert max(s.bytes for s in stats.items) <= budget
        kept = [
            i
            for i in range(len(sizes))
            if i not in {int(d.message.payload.split(b":")[0]) for d in dropped.items}
        ]
        expected_bytes = sum(len(topic) + sizes[i] for i in kept)
        assert stats.items[-1].bytes == expected_bytes <= budget
        assert stats.items[-1].depth == len(kept)
        rxmqtt_fault_proxy.accept()
        await got.wait_until(lambda ms: len(ms) >= len(kept), 10)
        arrived = [int(m.payload.split(b":")[0]) for m in got.items]  # type: ignore[attr-defined]
        assert arrived == kept
    await sub.close()


async def test_lifo_drain_order_seen_by_independent_subscriber(
    rxmqtt_mosquitto: MosquittoBroker, rxmqtt_fault_proxy: FaultProxy
) -> None:
    sub, got = await _live_subscriber(rxmqtt_mosquitto, "ql/#", "sub-lifo")
    pub = Connection(
        _settings(rxmqtt_fault_proxy.host, rxmqtt_fault_proxy.port, "pub-lifo"),
        reconnect=FAST,
        queue=QueuePolicy(max_messages=50, drain=Drain.LIFO),
    )
    async with pub:
        await pub.wait_for(ConnectionState.CONNECTED, 5)
        await _go_offline(pub, rxmqtt_fault_proxy)
        for i in range(50):
            pub.publish("ql/d", str(i).encode(), qos=1)
        rxmqtt_fault_proxy.accept()
        await got.wait_until(lambda ms: len(ms) >= 50, 10)
        assert _payloads(got) == list(reversed(range(50))), "newest first"
    await sub.close()


async def test_broker_crash_mid_stream_nothing_lost_silently(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    """SIGKILL without persistence: SessionLost, subscriptions restored, and every publish ends
    acknowledged or reported (counted by an independent subscriber)."""
    sub = Connection(
        _settings(rxmqtt_mosquitto.host, rxmqtt_mosquitto.port, "crash-sub", session_expiry=600),
        reconnect=FAST,
    )
    got = Recorder(sub.messages("crash/#", qos=1))
    pub = Connection(
        _settings(rxmqtt_mosquitto.host, rxmqtt_mosquitto.port, "crash-pub"), reconnect=FAST
    )
    sub_events = Recorder(sub.lifecycle)
    dropped = Recorder(pub.dropped)
    async with sub, pub:
        await sub.wait_for(ConnectionState.CONNECTED, 5)
        await pub.wait_for(ConnectionState.CONNECTED, 5)
        outcomes = []
        for i in range(600):
            outcomes.append(Recorder(pub.publish("crash/d", str(i).encode(), qos=1)))
            if i == 300:
                rxmqtt_mosquitto.kill()
                rxmqtt_mosquitto.start()
            await asyncio.sleep(0)
        for outcome in outcomes:
            await outcome.wait_done(20)
        await sub_events.wait_for_item(lambda e: isinstance(e, SessionLost), 10)
        acked = {i for i, o in enumerate(outcomes) if o.error is None}
        failed = {i for i, o in enumerate(outcomes) if o.error is not None}
        assert acked | failed == set(range(600))
        assert not acked & failed
        assert len(dropped.items) == len(failed), "every failure is reported on dropped"
        # Subscriptions are restored: what is acknowledged after the subscriber is back arrives.
        await sub.wait_for(ConnectionState.CONNECTED, 10)
        last = await pub.publish("crash/d", b"after", qos=1)
        assert last.reason_code == 0
        await got.wait_for_item(lambda m: m.payload == b"after", 10)


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from rxmqtt import Connection, ConnectionSettings, QueuePolicy
    from rxmqtt.queue import SqliteStore

    async def main() -> None:
        store = SqliteStore(sys.argv[1])
        conn = Connection(
            ConnectionSettings(host="127.0.0.1", port=int(sys.argv[2]), client_id="child"),
            queue=QueuePolicy(store=store),
        )
        async with conn:
            for i in range(500):
                conn.publish("persist/d", str(i).encode(), qos=1)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while store.pending and loop.time() < deadline:  # the store's batch reaches disk
                await asyncio.sleep(0.05)
            print("QUEUED", flush=True)
            await asyncio.sleep(60)  # killed here

    asyncio.run(main())
    """
)


async def test_sqlite_store_survives_a_killed_process(
    rxmqtt_mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    sub, got = await _live_subscriber(rxmqtt_mosquitto, "persist/#", "persist-sub")
    store_path = tmp_path / "queue.db"
    # The child's broker port has nothing listening: it stays offline and queues.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        down_port = s.getsockname()[1]
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(store_path), str(down_port), stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 20)
        assert line.strip() == b"QUEUED"
    finally:
        child.kill()  # SIGKILL: no close(), no flush beyond what the store already committed
        await asyncio.wait_for(child.wait(), 10)
    restarted = Connection(
        _settings(rxmqtt_mosquitto.host, rxmqtt_mosquitto.port, "child"),
        reconnect=FAST,
        queue=QueuePolicy(store=SqliteStore(store_path)),
    )
    async with restarted:
        await got.wait_until(lambda ms: len(ms) >= 500, 15, "500 messages from the store")
    assert sorted(_payloads(got)) == list(range(500))
    assert _payloads(got) == list(range(500)), "in order"
    await sub.close()
