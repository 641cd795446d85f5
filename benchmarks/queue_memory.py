"""Offline-queue memory and throughput: ``python -m benchmarks.queue_memory [--count N]``.

For the in-memory and the SQLite store it reports, for ``--count`` queued messages with a
``--payload``-byte payload:

- bytes/msg (queue): what the queue itself allocates per queued message (the ``Message`` objects
  are built before measuring, as the application owns them), via ``tracemalloc``;
- bytes/msg (total): the same including building the ``Message`` objects;
- enqueue/s and drain/s: ``offer`` rate, and ``pop`` + ``acknowledge`` rate (SQLite: including
  the batched writes and the final flush), measured without ``tracemalloc``.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from rxmqtt.message import Message
from rxmqtt.policies._queue import QueuePolicy
from rxmqtt.queue import OfflineQueue, QueueStore, SqliteStore

TOPIC = "bench/sensor/1"


def make_messages(count: int, payload: int) -> list[Message]:
    return [Message(TOPIC, i.to_bytes(8, "big").ljust(payload, b"."), 1) for i in range(count)]


def new_queue(store: QueueStore | None) -> OfflineQueue:
    return OfflineQueue(QueuePolicy(max_messages=None, max_bytes=None, store=store))


def measure_memory(
    make_store: Callable[[], QueueStore | None], count: int, payload: int
) -> tuple[float, float]:
    """(queue-only bytes/msg, total bytes/msg including the Message objects)."""
    messages = make_messages(count, payload)
    queue = new_queue(make_store())
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for message in messages:
        queue.offer(message)
    queue_only = (tracemalloc.get_traced_memory()[0] - before) / count
    tracemalloc.stop()
    queue.close()
    del messages, queue

    queue = new_queue(make_store())
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for message in make_messages(count, payload):
        queue.offer(message)
    total = (tracemalloc.get_traced_memory()[0] - before) / count
    tracemalloc.stop()
    queue.close()
    return queue_only, total


def measure_rates(
    make_store: Callable[[], QueueStore | None], count: int, payload: int
) -> tuple[float, float]:
    """(offers per second, pop+acknowledge per second)."""
    messages = make_messages(count, payload)
    queue = new_queue(make_store())
    gc.collect()
    start = time.perf_counter()
    for message in messages:
        queue.offer(message)
    queue.flush()
    enqueue = count / (time.perf_counter() - start)
    start = time.perf_counter()
    while (item := queue.pop()) is not None:
        queue.acknowledge(item.seq)
    queue.flush()
    drain = count / (time.perf_counter() - start)
    queue.close()
    return enqueue, drain


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=100_000, help="messages to queue")
    parser.add_argument("--payload", type=int, default=64, help="payload bytes per message")
    args = parser.parse_args(argv)
    count: int = args.count
    payload: int = args.payload

    with tempfile.TemporaryDirectory() as tmp:
        paths = iter(range(1_000_000))

        def sqlite_store() -> QueueStore:
            return SqliteStore(Path(tmp) / f"queue-{next(paths)}.db")

        stores: list[tuple[str, Callable[[], QueueStore | None]]] = [
            ("memory", lambda: None),
            ("sqlite", sqlite_store),
        ]
        size = len(TOPIC) + payload
        print(f"{count:,} messages, payload {payload} B (Message.size {size} B)")
        columns = ("B/msg queue", "B/msg total", "enqueue/s", "drain/s")
        header = f"{'store':<8} " + " ".join(f"{c:>12}" for c in columns)
        print(header)
        print("-" * len(header))
        for name, make_store in stores:
            queue_only, total = measure_memory(make_store, count, payload)
            enqueue, drain = measure_rates(make_store, count, payload)
            print(f"{name:<8} {queue_only:>12.1f} {total:>12.1f} {enqueue:>12,.0f} {drain:>12,.0f}")


if __name__ == "__main__":
    main()
