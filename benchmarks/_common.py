"""Shared pieces of the benchmark harness: sizes, the result row, the broker, small helpers.

Every scenario returns :class:`Row` values; :mod:`benchmarks.report` renders them. Nothing here
measures anything by itself.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from rxmqtt.testing import BrokerConfig, MosquittoBroker

PAYLOAD_BYTES = 64
X = "\N{MULTIPLICATION SIGN}"
"""The "times" sign of ratios in the table."""
TOPIC = "bench/e2e/data"

_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each scenario is: ``FULL`` for the published table, ``QUICK`` for the CI smoke."""

    name: str
    e2e_messages: int
    e2e_repeats: int
    e2e_timeout: float
    scaling_messages: int
    scaling_filters: tuple[int, ...]
    live_subscribe_filters: int
    queue_messages: int
    keep_alive: int
    detection_samples: int
    restart_samples: int
    latency_seconds: float
    latency_rate: int
    many_connections: int
    many_idle_seconds: float


FULL = Sizes(
    name="full",
    e2e_messages=50_000,
    e2e_repeats=3,
    e2e_timeout=120.0,
    scaling_messages=50_000,
    scaling_filters=(1, 100, 10_000),
    live_subscribe_filters=1_000,
    queue_messages=100_000,
    keep_alive=2,
    detection_samples=3,
    restart_samples=3,
    latency_seconds=10.0,
    latency_rate=1_000,
    many_connections=1_000,
    many_idle_seconds=10.0,
)

QUICK = Sizes(
    name="quick",
    e2e_messages=3_000,
    e2e_repeats=1,
    e2e_timeout=20.0,
    scaling_messages=3_000,
    scaling_filters=(1, 100, 10_000),
    live_subscribe_filters=300,
    queue_messages=10_000,
    keep_alive=1,
    detection_samples=1,
    restart_samples=1,
    latency_seconds=1.0,
    latency_rate=1_000,
    many_connections=20,
    many_idle_seconds=2.0,
)


Better = Literal["higher", "lower"]


@dataclass(slots=True)
class Row:
    """One line of the result table: an rxmqtt value beside a reference value.

    ``ratio`` is rxmqtt / reference. ``better`` says which direction wins (rates: higher;
    latencies, memory: lower). ``met`` is the verdict against the issue's target, when the row
    has one (``None``: no target, or not measurable in this run).
    """

    scenario: str
    measure: str
    rxmqtt: float | None
    reference: str = ""
    reference_value: float | None = None
    better: Better = "higher"
    target: str = ""
    met: bool | None = None
    note: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.rxmqtt is None or not self.reference_value:
            return None
        return self.rxmqtt / self.reference_value


@dataclass(frozen=True, slots=True)
class Throughput:
    """One end-to-end run: how many messages arrived, and how fast."""

    sent: int
    received: int
    unique: int
    seconds: float

    @property
    def complete(self) -> bool:
        """Every message arrived exactly once (the count is verified, not assumed)."""
        return self.received == self.sent and self.unique == self.sent

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        if self.complete:
            return f"all {self.sent:,} received"
        return f"INCOMPLETE: {self.received:,}/{self.sent:,} received ({self.unique:,} unique)"


def client_id(prefix: str) -> str:
    """A client id unique within this process (brokers are fresh per scenario anyway)."""
    return f"bench-{prefix}-{next(_ids)}"


def payloads(count: int) -> list[bytes]:
    """``count`` distinct 64-byte payloads (a sequence number, padded) so arrivals can be
    checked for completeness and duplicates."""
    return [i.to_bytes(8, "big").ljust(PAYLOAD_BYTES, b".") for i in range(count)]


BROKER_CONFIG = BrokerConfig(
    max_queued_messages=0, log_types=("error", "warning"), extra="set_tcp_nodelay true"
)
"""The broker every scenario runs against (see :func:`bench_broker`)."""


@contextlib.contextmanager
def bench_broker() -> Iterator[MosquittoBroker]:
    """A fresh Mosquitto on a free loopback port, tuned so that it neither drops messages nor
    adds delays of its own.

    ``max_queued_messages 0`` lifts Mosquitto's default cap of 1,000 queued messages per client
    (beyond it Mosquitto silently drops, which would make "all received" depend on timing).
    ``set_tcp_nodelay true``: by default Mosquitto leaves Nagle's algorithm on, so a PUBACK
    waits for the TCP ACK of the previous one -- about 1 ms at 1,000 msg/s, hitting some clients
    and not others depending on their timing. Logging is reduced to errors and warnings:
    ``log_type all`` logs every packet and would make the broker the bottleneck.
    """
    broker = MosquittoBroker(BROKER_CONFIG)
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


def settle() -> None:
    """Collect garbage between runs so one run's debris is not paid for by the next."""
    gc.collect()


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of non-empty ``values``."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.005) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass (for thread-based peers)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def try_import(module: str) -> str | None:
    """``None`` when ``module`` imports, else why not (optional peers are reported, not fatal)."""
    try:
        __import__(module)
    except ImportError as exc:
        return f"not installed ({exc.name}); pip install -e '.[bench]'"
    return None
