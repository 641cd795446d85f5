"""Publish latency at a fixed rate: QoS 1, 1,000 msg/s, from the publish call to its PUBACK.

The publisher follows a fixed schedule (message ``i`` is due at ``start + i / rate``; late ones
are sent at once, so the rate holds even when the loop's timer granularity is 1 ms); each
latency is measured from just before the publish call to the moment the application learns the
outcome: rxmqtt's result observable emits, paho's ``on_publish`` runs, aiomqtt's ``await
publish()`` returns. gmqtt has no per-publish acknowledgement in its API, so it is not measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from benchmarks._common import PAYLOAD_BYTES
from benchmarks.throughput import (
    UNBOUNDED_QUEUE,
    AsyncioPaho,
    paho_client,
    paho_connect_threaded,
    paho_stop_threaded,
    rx_settings,
)
from rxmqtt import Connection, ConnectionState, PublishResult

TOPIC = "bench/latency"
PAYLOAD = b"l" * PAYLOAD_BYTES
WARM_UP = 50

LatencyRunner = Callable[[str, int, int, float], list[float]]
"""(host, port, rate, seconds) -> latencies in seconds (one per message, all acknowledged)."""


class _Latencies:
    """Latencies of one run; ``finished`` is set once ``count`` outcomes are in (loop thread)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.values: list[float] = []
        self.finished = asyncio.Event()

    def add(self, seconds: float) -> None:
        self.values.append(seconds)
        if len(self.values) >= self.count:
            self.finished.set()


async def _paced(
    rate: int, seconds: float, send: Callable[[float], None], latencies: _Latencies
) -> None:
    """Call ``send(sent_at)`` on schedule, then wait (at most 10 s) for every outcome."""
    count = int(rate * seconds)
    interval = 1.0 / rate
    start = time.perf_counter()
    for index in range(count):
        due = start + index * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        send(time.perf_counter())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(latencies.finished.wait(), 10)


async def _rxmqtt(host: str, port: int, rate: int, seconds: float) -> list[float]:
    latencies = _Latencies(int(rate * seconds))
    pub = Connection(rx_settings(host, port, "rxl-pub"), queue=UNBOUNDED_QUEUE)
    async with pub:
        await pub.wait_for(ConnectionState.CONNECTED, timeout=10)
        for _ in range(WARM_UP):
            await asyncio.wait_for(pub.publish(TOPIC, PAYLOAD, qos=1), 10)

        def send(sent_at: float) -> None:
            def on_result(_result: PublishResult) -> None:
                latencies.add(time.perf_counter() - sent_at)

            pub.publish(TOPIC, PAYLOAD, qos=1).subscribe(on_result)

        await _paced(rate, seconds, send, latencies)
    return latencies.values


def run_rxmqtt(host: str, port: int, rate: int, seconds: float) -> list[float]:
    """rxmqtt: ``publish(...).subscribe(on_result)`` on schedule."""
    return asyncio.run(_rxmqtt(host, port, rate, seconds))


def run_paho_thread(host: str, port: int, rate: int, seconds: float) -> list[float]:
    """Raw paho ``loop_start``: publish from the main thread, ``on_publish`` in paho's thread.

    No lock is shared with the callback: paho calls ``on_publish`` holding its own mutexes,
    which ``publish()`` needs too, so a lock held across ``publish()`` would deadlock. Each side
    appends ``(mid, time)`` to its own list (atomic under the GIL) and they are paired by packet
    id afterwards (fewer than 65,535 publishes, so ids do not wrap).
    """
    count = int(rate * seconds)
    if count + WARM_UP >= 65_535:
        raise ValueError("too many publishes to pair by packet id")
    sent: list[tuple[int, float]] = []
    acked: list[tuple[int, float]] = []

    def on_publish(_c: Any, _u: Any, mid: int, *_: Any) -> None:
        acked.append((mid, time.perf_counter()))

    client = paho_client("pahol-pub")
    paho_connect_threaded(client, host, port)
    try:
        for _ in range(WARM_UP):
            client.publish(TOPIC, PAYLOAD, 1).wait_for_publish(10)
        client.on_publish = on_publish
        interval = 1.0 / rate
        start = time.perf_counter()
        for index in range(count):
            delay = start + index * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            at = time.perf_counter()
            sent.append((client.publish(TOPIC, PAYLOAD, 1).mid, at))
        deadline = time.monotonic() + 10
        while len(acked) < count and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        paho_stop_threaded(client)
    acked_at = dict(acked)
    return [acked_at[mid] - at for mid, at in sent if mid in acked_at]


async def _paho_asyncio(host: str, port: int, rate: int, seconds: float) -> list[float]:
    loop = asyncio.get_running_loop()
    latencies = _Latencies(int(rate * seconds))
    sent: dict[int, float] = {}
    helper = AsyncioPaho(loop, paho_client("pahoal-pub"))
    await helper.connect(host, port)
    try:
        client = helper.client
        warm: asyncio.Future[None] = loop.create_future()
        remaining = [WARM_UP]

        def on_warm(*_: Any) -> None:
            remaining[0] -= 1
            if remaining[0] == 0 and not warm.done():
                warm.set_result(None)

        client.on_publish = on_warm
        for _ in range(WARM_UP):
            client.publish(TOPIC, PAYLOAD, 1)
        await asyncio.wait_for(warm, 10)

        def on_publish(_c: Any, _u: Any, mid: int, *_: Any) -> None:
            at = sent.pop(mid, None)
            if at is not None:
                latencies.add(time.perf_counter() - at)

        client.on_publish = on_publish

        def send(sent_at: float) -> None:
            sent[client.publish(TOPIC, PAYLOAD, 1).mid] = sent_at

        await _paced(rate, seconds, send, latencies)
        return latencies.values
    finally:
        await helper.disconnect()


def run_paho_asyncio(host: str, port: int, rate: int, seconds: float) -> list[float]:
    """Raw paho on asyncio sockets (``examples/loop_asyncio.py``), ``on_publish``."""
    return asyncio.run(_paho_asyncio(host, port, rate, seconds))


async def _aiomqtt(host: str, port: int, rate: int, seconds: float) -> list[float]:
    import aiomqtt

    latencies = _Latencies(int(rate * seconds))
    tasks: set[asyncio.Task[None]] = set()
    async with aiomqtt.Client(
        host, port, identifier="bench-aiol-pub", protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        client.pending_calls_threshold = 10_000  # else it logs a warning per extra call
        for _ in range(WARM_UP):
            await client.publish(TOPIC, PAYLOAD, 1)

        async def one(sent_at: float) -> None:
            await client.publish(TOPIC, PAYLOAD, 1)
            latencies.add(time.perf_counter() - sent_at)

        def send(sent_at: float) -> None:
            task = asyncio.create_task(one(sent_at))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        await _paced(rate, seconds, send, latencies)
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return latencies.values


def run_aiomqtt(host: str, port: int, rate: int, seconds: float) -> list[float]:
    """aiomqtt: one task per ``await client.publish(..., qos=1)`` on schedule."""
    return asyncio.run(_aiomqtt(host, port, rate, seconds))


PEERS: dict[str, tuple[LatencyRunner, str | None]] = {
    "paho loop_start": (run_paho_thread, None),
    "paho asyncio": (run_paho_asyncio, None),
    "aiomqtt": (run_aiomqtt, "aiomqtt"),
}
