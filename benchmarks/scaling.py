"""Subscription scaling: delivery rate to one matching filter among 1, 100 or 10,000 live ones.

rxmqtt's dispatch is a topic trie, so the cost of delivering a message should not grow with the
number of ``messages()`` filters. The non-matching filters mix literal, ``+`` and ``#`` patterns
around the published topic (so the trie really has branches to skip); the matching filter is
subscribed last. The reference is raw paho (``loop_start``) with the same broker subscriptions
and one plain ``on_message`` -- no dispatch at all, so it shows what the broker and the protocol
engine cost at each filter count.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from reactivex import abc

from benchmarks._common import Throughput
from benchmarks.throughput import (
    BATCH,
    UNBOUNDED_QUEUE,
    _Sink,
    _warm_up,
    paho_client,
    paho_connect_threaded,
    paho_stop_threaded,
    rx_settings,
)
from rxmqtt import Connection, ConnectionState, Message

TARGET = "bench/scale/target"
SUBSCRIBE_CHUNK = 500
"""Filters per SUBSCRIBE packet for the paho reference."""


def filters(count: int) -> list[str]:
    """``count - 1`` filters that do not match :data:`TARGET`, then :data:`TARGET` itself."""
    others: list[str] = []
    for index in range(count - 1):
        kind = index % 3
        if kind == 0:
            others.append(f"bench/scale/n{index}")
        elif kind == 1:
            others.append(f"bench/scale/n{index}/+")
        else:
            others.append(f"bench/+/n{index}/#")
    return [*others, TARGET]


async def _rxmqtt(
    host: str, port: int, count: int, data: list[bytes], timeout: float
) -> Throughput:
    sink = _Sink(len(data))
    add = sink.add

    def on_target(message: Message) -> None:
        add(message.payload)

    sub = Connection(rx_settings(host, port, "rxs-sub"))
    pub = Connection(rx_settings(host, port, "rxs-pub"), queue=UNBOUNDED_QUEUE)
    # Subscribed before start(): the CONNACK then sends them all in one SUBSCRIBE (see
    # live_setup_rxmqtt for subscribing on a live connection).
    wanted = filters(count)
    subscriptions = [sub.messages(f).subscribe(_ignore) for f in wanted[:-1]]
    subscriptions.append(sub.messages(TARGET).subscribe(on_target))
    try:
        async with sub, pub:
            await sub.wait_for(ConnectionState.CONNECTED, timeout=10)
            await pub.wait_for(ConnectionState.CONNECTED, timeout=10)
            # The target is subscribed last: once a probe arrives, every filter is live.
            await _warm_up(lambda: pub.publish(TARGET, b"warm-up"), sink, timeout=30)
            publish = pub.publish
            start = time.perf_counter()
            for index, payload in enumerate(data, 1):
                publish(TARGET, payload)
                if index % BATCH == 0:
                    await asyncio.sleep(0)
            await sink.wait(timeout)
            return sink.result(start)
    finally:
        for subscription in subscriptions:
            subscription.dispose()


def _ignore(message: Message) -> None:
    """The observer of the non-matching filters (never called)."""


def run_rxmqtt(host: str, port: int, count: int, data: list[bytes], timeout: float) -> Throughput:
    """rxmqtt subscriber with ``count`` live ``messages()`` filters, rxmqtt publisher."""
    return asyncio.run(_rxmqtt(host, port, count, data, timeout))


async def _live_setup_rxmqtt(host: str, port: int, count: int, timeout: float) -> float:
    sink = _Sink(1)
    sub = Connection(rx_settings(host, port, "rxsl-sub"))
    pub = Connection(rx_settings(host, port, "rxsl-pub"))
    subscriptions: list[abc.DisposableBase] = []
    try:
        async with sub, pub:
            await sub.wait_for(ConnectionState.CONNECTED, timeout=10)
            await pub.wait_for(ConnectionState.CONNECTED, timeout=10)
            start = time.perf_counter()
            wanted = filters(count)
            subscriptions = [sub.messages(f).subscribe(_ignore) for f in wanted[:-1]]
            subscriptions.append(
                sub.messages(TARGET).subscribe(lambda message: sink.add(message.payload))
            )
            await _warm_up(lambda: pub.publish(TARGET, b"probe"), sink, timeout=timeout)
            return sink.end - start  # when the first probe arrived
    finally:
        for subscription in subscriptions:
            subscription.dispose()


def live_setup_rxmqtt(host: str, port: int, count: int, timeout: float) -> float:
    """Seconds from the first of ``count`` ``messages().subscribe()`` calls on a connected
    Connection until the last filter is live at the broker (probe granularity 20 ms)."""
    return asyncio.run(_live_setup_rxmqtt(host, port, count, timeout))


def live_setup_paho(host: str, port: int, count: int, timeout: float) -> float:
    """Raw paho ``loop_start``: ``count`` ``subscribe()`` calls, until every SUBACK is in."""
    client = paho_client("pahosl-sub")
    acked: set[int] = set()
    lock = threading.Lock()

    def on_subscribe(_c: Any, _u: Any, mid: int, *_: Any) -> None:
        with lock:
            acked.add(mid)

    client.on_subscribe = on_subscribe
    paho_connect_threaded(client, host, port)
    try:
        start = time.perf_counter()
        mids = [client.subscribe(f, 0)[1] for f in filters(count)]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with lock:
                if acked.issuperset(mids):
                    return time.perf_counter() - start
            time.sleep(0.001)
        raise TimeoutError(f"paho: SUBACKs missing after {timeout:g} s")
    finally:
        paho_stop_threaded(client)


def run_paho(host: str, port: int, count: int, data: list[bytes], timeout: float) -> Throughput:
    """Raw paho ``loop_start`` subscriber with ``count`` broker subscriptions, one on_message."""
    sink = _Sink(len(data))
    add = sink.add
    sub = paho_client("pahos-sub")
    pub = paho_client("pahos-pub")
    sub.on_message = lambda _c, _u, msg: add(msg.payload)
    acked: set[int] = set()
    lock = threading.Lock()

    def on_subscribe(_c: Any, _u: Any, mid: int, *_: Any) -> None:
        with lock:
            acked.add(mid)

    sub.on_subscribe = on_subscribe
    started: list[Any] = []
    try:
        for client in (sub, pub):
            paho_connect_threaded(client, host, port)
            started.append(client)
        wanted = filters(count)
        mids = []
        for offset in range(0, len(wanted), SUBSCRIBE_CHUNK):
            _, mid = sub.subscribe([(f, 0) for f in wanted[offset : offset + SUBSCRIBE_CHUNK]])
            mids.append(mid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with lock:
                if acked.issuperset(mids):
                    break
            time.sleep(0.005)
        else:
            raise TimeoutError("paho: SUBACKs missing after 30 s")
        publish = pub.publish
        start = time.perf_counter()
        for payload in data:
            publish(TARGET, payload, 0)
        sink.complete.wait(timeout)
        return sink.result(start)
    finally:
        for client in started:
            paho_stop_threaded(client)
