"""Offline queue: memory per queued 64-byte message and enqueue/drain rates (memory, SQLite).

A thin adapter over :mod:`benchmarks.queue_memory` (which can also be run on its own). No
broker: the queue is pure. The memory target is about what the queue adds, so two numbers are
kept: ``queue`` -- what the queue allocates per message for ``Message`` objects the application
already built -- and ``total`` -- including building the ``Message`` (and its payload ``bytes``)
per message. The issue's "overhead beyond topic + payload" is ``total`` minus the payload
bytes: all messages share one topic string, so ``total`` holds no per-message topic bytes.
SQLite's own page cache is not a Python allocation and is not counted.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks import queue_memory
from benchmarks._common import PAYLOAD_BYTES
from rxmqtt.queue import QueueStore, SqliteStore


@dataclass(frozen=True, slots=True)
class QueueResult:
    """Measurements for one store."""

    store: str
    bytes_queue: float
    bytes_total: float
    enqueue_rate: float
    drain_rate: float

    @property
    def overhead(self) -> float:
        """Bytes per message beyond the topic and payload themselves."""
        return self.bytes_total - PAYLOAD_BYTES


def measure(count: int) -> list[QueueResult]:
    """Memory and rates for the in-memory and the SQLite store with ``count`` messages."""
    results: list[QueueResult] = []
    with tempfile.TemporaryDirectory(prefix="rxmqtt-bench-queue-") as tmp:
        paths = iter(range(1_000_000))

        def sqlite_store() -> QueueStore:
            return SqliteStore(Path(tmp) / f"queue-{next(paths)}.db")

        def memory_store() -> QueueStore | None:
            return None

        stores: list[tuple[str, Callable[[], QueueStore | None]]] = [
            ("memory", memory_store),
            ("SQLite", sqlite_store),
        ]
        for name, make_store in stores:
            queue_only, total = queue_memory.measure_memory(make_store, count, PAYLOAD_BYTES)
            enqueue, drain = queue_memory.measure_rates(make_store, count, PAYLOAD_BYTES)
            results.append(QueueResult(name, queue_only, total, enqueue, drain))
    return results
