"""Leak checks: 100 reconnect cycles leave nothing behind.

One connection (persistent session, fast backoff) reaches Mosquitto through a FaultProxy. Each
cycle cuts the link (a proxy RST; every tenth cycle a graceful broker restart instead, which
without persistence also loses the session and forces a re-subscribe), waits for the
reconnect, subscribes to and disposes of a fresh filter, and publishes a QoS 1 message that the
connection's own long-lived subscription must receive. After a warm-up the process is measured;
after 100 more cycles it is measured again (after ``gc.collect()``), and nothing may have grown:
open file descriptors (``/proc/self/fd``), threads, asyncio tasks, the loop's registered
readers/writers and pending timers, the connection's subscription registry (filters, trie
nodes, pending SUBACKs), its unacknowledged publishes and paho's message stores, the number of
observers on its subjects -- and resident memory (``VmRSS``) grows by less than 5 %.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from rxmqtt import (
    Backoff,
    Connected,
    Connection,
    ConnectionSettings,
    ConnectionState,
    Jitter,
    LifecycleEvent,
    Message,
    ReconnectPolicy,
)
from rxmqtt.testing import FaultProxy, MosquittoBroker

pytestmark = [pytest.mark.broker, pytest.mark.slow]

CYCLES = 100
WARM_UP = 15
BROKER_RESTART_EVERY = 10
RSS_GROWTH_LIMIT = 0.05
STEP_TIMEOUT = 20.0
"""Deadline for each reconnect and each round trip (generous: a loaded 2-core machine)."""

FAST = ReconnectPolicy(
    backoff=Backoff(initial=0.01, maximum=0.05, jitter=Jitter.FULL), reset_after=0.0
)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def _trie_nodes(trie: Any) -> int:
    count = 0
    stack = [trie._root]
    while stack:
        node = stack.pop()
        count += 1
        stack.extend(node.children.values())
        if node.plus is not None:
            stack.append(node.plus)
    return count


def _observers(subject: Any) -> int:
    return len(getattr(subject, "observers", ()))


def _snapshot(conn: Connection) -> dict[str, int]:
    """Everything that must not grow (private attributes are fair game in a leak test)."""
    gc.collect()
    loop = asyncio.get_running_loop()
    registry = conn._subscriptions
    publisher = conn._publisher
    engine = conn._engine
    assert engine is not None
    paho = engine._paho._client
    selector_map = loop._selector.get_map()  # type: ignore[attr-defined]
    timers: list[asyncio.TimerHandle] = loop._scheduled  # type: ignore[attr-defined]
    return {
        "fds": _fds(),
        "threads": threading.active_count(),
        "tasks": len(asyncio.all_tasks()),
        "loop_fds": len(selector_map) if selector_map is not None else 0,
        "loop_timers": sum(1 for timer in timers if not timer.cancelled()),
        "filters": len(registry),
        "trie_entries": len(registry._trie),
        "trie_nodes": _trie_nodes(registry._trie),
        "pending_subacks": len(registry._pending_acks),
        "unsubscribes_due": len(registry._unsubscribe_due),
        "pending_unsubacks": len(registry._pending_unsubscribes),
        "grace_buffer": len(conn._grace),
        "unacked": len(publisher._unacked),
        "queued": len(publisher._queue),
        "paho_out": len(paho._out_messages),
        "paho_in": len(paho._in_messages),
        "pubrec_codes": len(engine._pubrec_codes),
        "lifecycle_observers": _observers(conn._lifecycle),
        "state_observers": _observers(conn._states),
        "stats_observers": _observers(conn._stats),
        "dropped_observers": _observers(conn._dropped),
        "rss_kib": _rss_kib(),
    }


class _Connects:
    """Counts ``Connected`` events (a reconnect may be over before a state wait could start)."""

    def __init__(self) -> None:
        self.count = 0
        self._event = asyncio.Event()

    def __call__(self, event: LifecycleEvent) -> None:
        if isinstance(event, Connected):
            self.count += 1
            self._event.set()

    async def wait_beyond(self, count: int, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.count <= count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no reconnect within {timeout}s")
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), remaining)
            except TimeoutError:
                continue


class _Inbox:
    """Counts received payloads without keeping messages (the test must not leak either)."""

    def __init__(self) -> None:
        self.last: bytes = b""
        self.count = 0
        self._event = asyncio.Event()

    def __call__(self, message: Message) -> None:
        self.last = message.payload
        self.count += 1
        self._event.set()

    async def wait_for(self, payload: bytes, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.last != payload:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{payload!r} not received within {timeout}s")
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), remaining)
            except TimeoutError:
                continue


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker(log_types=("error", "warning")) as started:
        yield started


async def _cycle(
    i: int,
    conn: Connection,
    broker: MosquittoBroker,
    proxy: FaultProxy,
    connects: _Connects,
    inbox: _Inbox,
) -> None:
    seen = connects.count
    if i % BROKER_RESTART_EVERY == BROKER_RESTART_EVERY - 1:
        await asyncio.to_thread(broker.restart)
    else:
        await asyncio.to_thread(proxy.reset)
    await connects.wait_beyond(seen, STEP_TIMEOUT)
    await conn.wait_for(ConnectionState.CONNECTED, STEP_TIMEOUT)
    transient = conn.messages(f"leak/tmp/{i}/+", qos=1).subscribe(lambda _m: None)
    transient.dispose()
    payload = f"cycle {i}".encode()
    # A broker restart loses the session: the re-subscribe may trail the CONNACK, so repeat
    # the publish until the round trip proves the subscription is back.
    for _ in range(int(STEP_TIMEOUT / 0.5)):
        await asyncio.wait_for(conn.publish("leak/x", payload, qos=1), STEP_TIMEOUT)
        try:
            await inbox.wait_for(payload, 0.5)
            return
        except TimeoutError:
            continue
    raise TimeoutError(f"cycle {i}: round trip never completed")


@pytest.mark.timeout(120)
async def test_100_reconnect_cycles_leak_nothing(broker: MosquittoBroker) -> None:
    proxy = FaultProxy(broker.host, broker.port).start()
    conn = Connection(
        ConnectionSettings(
            host=proxy.host,
            port=proxy.port,
            client_id="leaky",
            clean_start=False,
            session_expiry=300,
            connect_timeout=5.0,
        ),
        reconnect=FAST,
    )
    inbox = _Inbox()
    connects = _Connects()
    subscription = conn.messages("leak/x", qos=1).subscribe(inbox)
    watching = conn.lifecycle.subscribe(connects)
    try:
        async with conn:
            await conn.wait_for(ConnectionState.CONNECTED, STEP_TIMEOUT)
            for i in range(WARM_UP):
                await _cycle(i, conn, broker, proxy, connects, inbox)
            before = _snapshot(conn)
            for i in range(WARM_UP, WARM_UP + CYCLES):
                await _cycle(i, conn, broker, proxy, connects, inbox)
            after = _snapshot(conn)
    finally:
        subscription.dispose()
        watching.dispose()
        proxy.close()
    print(f"leak check over {CYCLES} cycles:")
    for key in before:
        print(f"  {key:20} {before[key]:>8} -> {after[key]:>8}")
    grown = {
        key: (before[key], after[key])
        for key in before
        if key != "rss_kib" and after[key] > before[key]
    }
    assert not grown, f"grew over {CYCLES} reconnect cycles (before, after): {grown}"
    assert after["filters"] == 1, "only the long-lived subscription is left"
    rss_growth = (after["rss_kib"] - before["rss_kib"]) / before["rss_kib"]
    assert rss_growth < RSS_GROWTH_LIMIT, (
        f"RSS grew {rss_growth:.1%} ({before['rss_kib']} -> {after['rss_kib']} KiB)"
    )
