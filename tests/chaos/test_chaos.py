"""Chaos: three publishers and two independent subscribers under a seeded random fault schedule.

Set-up (per variant): one Mosquitto; three publishing :class:`Connection` s, each behind its own
:class:`FaultProxy`, with persistent sessions (``clean_start=False``, ``session_expiry=600``), a
small offline queue (``max_messages=150``, ``DROP_OLDEST``, ``FIFO``) so that long outages make
the policy drop, and a short ack timeout / keep-alive so dead links are noticed; each publishes
QoS 1 and QoS 2 alternately (~100 msg/s) on ``chaos/<publisher>/q<qos>`` with a per-publisher
sequence number. Two subscribers connect to the broker directly (no faults on their links),
with persistent sessions and a QoS 2 subscription to ``chaos/#``, and record everything. They
announce ``receive_maximum=65535``: with Mosquitto's default outgoing window of 20, Mosquitto
2.0.11 sometimes sends a newly arrived message to a subscriber ahead of older ones still queued
for it (its log shows a higher-numbered PUBLISH overtaking queued ones after a restart; cf.
eclipse/mosquitto#2306, in-flight quota accounting, fixed after 2.0.11), which would make the
order check test the broker instead of this client.

The fault schedule is drawn from ``random.Random`` seeded with ``RXMQTT_CHAOS_SEED`` (random when
unset; printed, and a replay command is attached to every failure): the kinds, targets,
durations and gaps of the faults are a pure function of the seed (when they land relative to
individual messages is up to the machine). One track per proxy injects, one at a time:
``reset`` (RST both sides), ``blackhole`` (the current link goes dark: sockets open, nothing
flows, new connections work; after the window the dead link is RST), ``partition`` (the current
link goes dark and new connections are refused; healed with RST + accept) and ``delay`` (added
latency both ways, order preserved). A broker track restarts Mosquitto every few seconds. A dark
link is always cut afterwards, never resumed: resuming a TCP stream after silently discarding
bytes out of its middle is something no real network does (TCP would retransmit them).

After ``RXMQTT_CHAOS_SECONDS`` (default 22 per variant) the faults stop, the network heals,
every connection reconnects, each publisher publishes a *tail* of 20 more messages, and the run
drains with deadlines. What is asserted:

Both variants
    - **Every publish ended, exactly once**: acknowledged (``PublishResult``) or dropped by the
      queue policy (``MessageDroppedError``) -- none pending, none with two outcomes, none refused
      or closed -- and the dropped ones are exactly the items on ``conn.dropped``.
    - **Dropped means never sent**: no message reported dropped reaches a subscriber.
    - **No phantoms**: every message a subscriber receives was published, with its payload.
    - **Per-publisher order (FIFO drain)**: for each subscriber and each (publisher, QoS) topic,
      the sequence numbers in arrival order, keeping the first copy of each, are strictly
      increasing. MQTT 5 (4.6) requires the client to re-send unacknowledged PUBLISHes in their
      original order and the server to forward a client's messages on a topic in the order
      received, so duplicates (QoS 1 re-sends) may appear late, but a *new* message may not
      overtake an older one. Order across the two QoS levels is not promised (QoS 2 is
      forwarded at PUBREL) and is not checked.
    - **The tail arrives**: the 20 messages published after the network healed are acknowledged
      and delivered to both subscribers (QoS 2 exactly once, QoS 1 at least once).
    - No exception reaches the event loop's exception handler; nothing logged at ERROR.

``persistent`` (Mosquitto with ``persistence true``; broker faults are graceful restarts)
    SIGTERM makes Mosquitto write its whole state (sessions, subscriptions, queued and in-flight
    messages, the QoS 2 handshake state) before it exits, so the restarted broker is exactly
    where it stopped. Hence additionally: **every acknowledged message reaches both
    subscribers**, **QoS 2 exactly once**, QoS 1 at least once (duplicates counted). SIGKILL is
    not used here: Mosquitto's persistence is a periodic snapshot (``autosave_interval``), so a
    crash rolls the broker back by up to a second -- forgetting acknowledged messages and
    re-sending completed QoS 2 flows -- and no client can prove exactly-once across that.

``volatile`` (no persistence; broker faults are SIGKILL crashes, some graceful restarts)
    Every restart is a brand-new broker: sessions, subscriptions and everything in flight are
    gone (subscribers see ``SessionLost`` and re-subscribe). Messages acknowledged by a broker
    that then died, or published while a subscriber's subscription was missing, are legitimately
    lost -- so "acknowledged => delivered" is not provable in general. What is: **QoS 2 at most
    once** (no duplicates at any subscriber), and **acknowledged => delivered** for every
    message published after the last broker restart *and* after both subscribers were proven
    re-subscribed (a probe published after the restart reached both), because that broker lives
    to the end and already held both subscriptions when the message arrived. A QoS 2 publish
    whose PUBREL was owed when the broker died ends in ``MessageMayBeLostError`` (never in a
    success): the one outcome besides acknowledged and dropped allowed here.

A JSON summary (publishes, outcomes, duplicates, faults, reconnects) is printed; set
``RXMQTT_CHAOS_REPORT=path`` to append it to a file (the ``soak`` nox session does).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import random
import secrets
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from rxmqtt import (
    Backoff,
    Connected,
    Connection,
    ConnectionSettings,
    ConnectionState,
    Drain,
    DroppedMessage,
    GaveUp,
    Jitter,
    LifecycleEvent,
    Message,
    Overflow,
    PublishResult,
    PublishRetry,
    QueuePolicy,
    ReconnectPolicy,
    SessionLost,
)
from rxmqtt.testing import BrokerConfig, FaultProxy, MosquittoBroker
from rxmqtt.testing.recorder import Recorder
from tests._helpers import loop_exceptions

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SEED_ENV = "RXMQTT_CHAOS_SEED"
SECONDS_ENV = "RXMQTT_CHAOS_SECONDS"
REPORT_ENV = "RXMQTT_CHAOS_REPORT"


def _chaos_seconds() -> float:
    text = os.environ.get(SECONDS_ENV, "").strip()
    return float(text) if text else 22.0


def _seed() -> int:
    text = os.environ.get(SEED_ENV, "").strip()
    return int(text) if text else secrets.randbits(32)


CHAOS_SECONDS = _chaos_seconds()
SEED = _seed()

PUBLISHERS = 3
SUBSCRIBERS = 2
BURST = 5
"""Publishes per publisher per tick (QoS 1 and 2 alternately)."""
TICK = 0.05
"""Seconds between bursts: ~100 publishes/s per publisher."""
TAIL = 20
"""Publishes per publisher after the network healed."""
QUEUE = QueuePolicy(max_messages=150, overflow=Overflow.DROP_OLDEST, drain=Drain.FIFO)
RECONNECT = ReconnectPolicy(backoff=Backoff(initial=0.05, maximum=0.5, jitter=Jitter.FULL))
RETRY = PublishRetry(ack_timeout=3.0)
SESSION_EXPIRY = 600
SETTLE_TIMEOUT = 60.0
"""Deadline for each phase of the drain after the chaos (generous: a loaded 2-core machine)."""

log = logging.getLogger("tests.chaos")


@dataclass(frozen=True)
class Variant:
    name: str
    persistence: bool
    crash_share: float
    """Probability that a broker fault is SIGKILL (else SIGTERM, a graceful restart)."""

    def rng(self, seed: int, track: str) -> random.Random:
        return random.Random(f"{seed}:{self.name}:{track}")


VARIANTS = [
    pytest.param(Variant("persistent", persistence=True, crash_share=0.0), id="persistent"),
    pytest.param(Variant("volatile", persistence=False, crash_share=0.7), id="volatile"),
]


# ---------------------------------------------------------------------------------------------
# publishers: one ledger entry per publish() call, with every signal its observable delivered


@dataclass
class Sent:
    seq: int
    qos: int
    called_at: float
    results: list[PublishResult] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)
    completed: int = 0

    @property
    def outcome(self) -> str:
        """``acked``, ``dropped``, ``refused``, ``closed``, ``may_be_lost``, ``pending`` or
        ``anomalous``."""
        if not self.results and not self.errors and not self.completed:
            return "pending"
        if len(self.results) == 1 and self.completed == 1 and not self.errors:
            return "acked"
        if len(self.errors) == 1 and not self.results and not self.completed:
            return {
                "MessageDroppedError": "dropped",
                "PublishError": "refused",
                "ConnectionClosedError": "closed",
                "MessageMayBeLostError": "may_be_lost",
            }.get(type(self.errors[0]).__name__, "anomalous")
        return "anomalous"


class ChaosPublisher:
    def __init__(self, index: int, proxy: FaultProxy) -> None:
        self.name = f"p{index}"
        self.proxy = proxy
        self.conn = Connection(
            ConnectionSettings(
                host=proxy.host,
                port=proxy.port,
                client_id=f"chaos-{self.name}",
                clean_start=False,
                session_expiry=SESSION_EXPIRY,
                keep_alive=2,
                connect_timeout=2.0,
            ),
            reconnect=RECONNECT,
            queue=QUEUE,
            publish_retry=RETRY,
        )
        self.sent: list[Sent] = []
        self.dropped: Recorder[DroppedMessage] = Recorder(self.conn.dropped)
        self.events: Recorder[LifecycleEvent] = Recorder(self.conn.lifecycle)
        self.timeline: list[tuple[float, str]] = []
        self.conn.lifecycle.subscribe(
            lambda e: self.timeline.append((asyncio.get_running_loop().time(), str(e)))
        )

    def topic(self, qos: int) -> str:
        return f"chaos/{self.name}/q{qos}"

    def payload(self, seq: int) -> bytes:
        return f"{self.name}:{seq}".encode()

    def publish_next(self, now: float) -> None:
        seq = len(self.sent)
        qos = 2 if seq % 2 else 1
        entry = Sent(seq, qos, now)
        self.sent.append(entry)
        self.conn.publish(self.topic(qos), self.payload(seq), qos=qos).subscribe(
            on_next=entry.results.append,
            on_error=entry.errors.append,
            on_completed=lambda: setattr(entry, "completed", entry.completed + 1),
        )

    def pending(self) -> int:
        return sum(1 for s in self.sent if s.outcome == "pending")


async def publish_loop(pub: ChaosPublisher, until: float) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        for _ in range(BURST):
            pub.publish_next(loop.time())
        await asyncio.sleep(TICK)  # pacing, not waiting for anything


# ---------------------------------------------------------------------------------------------
# subscribers: keep every message, index probes so waiting for one is O(1)


class Tape:
    """Everything one subscriber received, in order, with indexes that make waiting cheap:
    the probe payloads seen, and the sequence numbers seen per publisher."""

    def __init__(self, conn: Connection) -> None:
        self.messages: list[Message] = []
        self.arrived: list[float] = []
        self.probes: set[bytes] = set()
        self.seen: dict[str, set[int]] = defaultdict(set)
        self.error: Exception | None = None
        conn.messages("chaos/#", qos=2).subscribe(on_next=self._on_next, on_error=self._on_error)

    def _on_next(self, message: Message) -> None:
        if message.topic == "chaos/probe":
            self.probes.add(message.payload)
            return
        self.messages.append(message)
        self.arrived.append(asyncio.get_running_loop().time())
        with contextlib.suppress(ValueError):
            name, _, seq = _parse(message)
            self.seen[name].add(seq)

    def _on_error(self, error: Exception) -> None:
        self.error = error


class Subscribers:
    def __init__(self, broker: MosquittoBroker) -> None:
        self.conns = [
            Connection(
                ConnectionSettings(
                    host=broker.host,
                    port=broker.port,
                    client_id=f"chaos-sub{i}",
                    clean_start=False,
                    session_expiry=SESSION_EXPIRY,
                    keep_alive=5,
                    receive_maximum=65535,
                ),
                reconnect=RECONNECT,
            )
            for i in range(SUBSCRIBERS)
        ]
        self.tapes = [Tape(conn) for conn in self.conns]
        self.events: list[Recorder[LifecycleEvent]] = [Recorder(c.lifecycle) for c in self.conns]
        self.probe = Connection(
            ConnectionSettings(host=broker.host, port=broker.port, client_id="chaos-probe"),
            reconnect=RECONNECT,
        )
        self._probes = 0

    async def ready(self, timeout: float) -> float:
        """Publish probes until one reaches every subscriber; returns the loop time by which
        it had (every later publish is processed by the broker after both subscriptions)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._probes += 1
            payload = f"probe:{self._probes}".encode()
            self.probe.publish("chaos/probe", payload, qos=1)
            attempt_end = min(deadline, loop.time() + 1.0)
            while loop.time() < attempt_end:
                if all(payload in tape.probes for tape in self.tapes):
                    return loop.time()
                await asyncio.sleep(0.02)  # polling a condition, with a deadline
            if loop.time() >= deadline:
                states = [c.state.name for c in self.conns]
                raise TimeoutError(f"subscribers not ready after {timeout}s (states {states})")


# ---------------------------------------------------------------------------------------------
# the fault schedule


@dataclass
class FaultLog:
    counts: Counter[str] = field(default_factory=Counter)
    lines: list[str] = field(default_factory=list)
    start: float = 0.0
    epochs: list[float] = field(default_factory=list)
    """Loop time at which each broker epoch was proven ready (subscribers re-subscribed)."""

    def note(self, now: float, start: float, text: str) -> None:
        self.lines.append(f"{now - start:7.2f}s {text}")


async def _window(seconds: float, until: float) -> None:
    """The duration of a fault: the schedule itself, clipped to the end of the chaos."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, min(seconds, until - loop.time())))


async def network_track(
    proxy: FaultProxy, name: str, rng: random.Random, start: float, until: float, log_: FaultLog
) -> None:
    loop = asyncio.get_running_loop()
    while True:
        gap = rng.uniform(0.4, 2.0)
        kind = rng.choices(["reset", "blackhole", "partition", "delay"], [3, 2, 2, 2])[0]
        duration = rng.uniform(0.5, 4.0) if kind != "delay" else rng.uniform(1.0, 3.0)
        latency = rng.uniform(0.02, 0.4)
        await _window(gap, until)
        if loop.time() >= until - 0.2:
            return
        log_.counts[kind] += 1
        log_.note(loop.time(), start, f"{name} {kind} {duration:.2f}s")
        if kind == "reset":
            await asyncio.to_thread(proxy.reset)
        elif kind == "delay":
            await asyncio.to_thread(proxy.delay, latency)
            try:
                await _window(duration, until)
            finally:
                await asyncio.to_thread(proxy.delay, 0.0)
        else:
            if kind == "partition":
                await asyncio.to_thread(proxy.refuse)
            dark = proxy.connections
            for conn in dark:
                with contextlib.suppress(RuntimeError):
                    await asyncio.to_thread(conn.blackhole)
            try:
                await _window(duration, until)
            finally:
                for conn in dark:  # a dark link is cut, never resumed with a hole in it
                    with contextlib.suppress(RuntimeError):
                        await asyncio.to_thread(conn.reset)
                if kind == "partition":
                    await asyncio.to_thread(proxy.accept)


async def broker_track(
    broker: MosquittoBroker,
    subs: Subscribers,
    variant: Variant,
    rng: random.Random,
    start: float,
    until: float,
    log_: FaultLog,
) -> None:
    loop = asyncio.get_running_loop()
    while True:
        gap = rng.uniform(2.5, 6.0)
        crash = rng.random() < variant.crash_share
        down = rng.uniform(0.1, 1.5)
        if loop.time() + gap + down + 1.0 >= until:
            return
        await _window(gap, until)
        kind = "broker-crash" if crash else "broker-restart"
        log_.counts[kind] += 1
        log_.note(loop.time(), start, f"{kind} down {down:.2f}s")
        await asyncio.to_thread(broker.kill if crash else broker.stop)
        await asyncio.sleep(down)  # the outage itself (part of the schedule)
        await asyncio.to_thread(broker.start)
        log_.epochs.append(await subs.ready(SETTLE_TIMEOUT))
        log_.note(loop.time(), start, "subscribers re-subscribed")


# ---------------------------------------------------------------------------------------------
# the test


async def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a cheap predicate until it holds; ``TimeoutError`` naming ``what`` at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() >= deadline:
            raise TimeoutError(f"{what}: not reached within {timeout}s")
        await asyncio.sleep(0.05)


def _append_line(path: str, text: str) -> None:
    with open(path, "a", encoding="utf-8") as report:
        report.write(text + "\n")


def _replay(variant: Variant) -> str:
    return (
        f"chaos seed {SEED} ({variant.name}, {CHAOS_SECONDS:g}s); replay with:\n"
        f"  {SEED_ENV}={SEED} {SECONDS_ENV}={CHAOS_SECONDS:g} "
        f".venv/bin/pytest tests/chaos -k 'test_chaos and {variant.name}'"
    )


@pytest.mark.timeout(CHAOS_SECONDS + 240)
@pytest.mark.parametrize("variant", VARIANTS)
async def test_chaos(variant: Variant, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rxmqtt")
    print(_replay(variant))
    broker = MosquittoBroker(
        BrokerConfig(
            persistence=variant.persistence,
            max_queued_messages=1_000_000,
            log_types=("error", "warning", "notice", "information"),
        )
    )
    proxies: list[FaultProxy] = []
    closers: list[Connection] = []
    summary: dict[str, Any] = {}
    problems: list[str] = []
    with loop_exceptions() as loop_errors:
        try:
            await asyncio.to_thread(broker.start)
            proxies = [FaultProxy(broker.host, broker.port).start() for _ in range(PUBLISHERS)]
            summary, found = await _run(variant, broker, proxies, closers)
            problems += found
        except Exception as exc:
            raise AssertionError(f"{exc!r}\n{_replay(variant)}") from exc
        finally:
            for conn in closers:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 10)
            for proxy in proxies:
                proxy.close()
            warnings = [line for line in broker.log_text().splitlines() if "Warning" in line]
            broker.close()
            if warnings:
                print("mosquitto warnings:", *warnings[-30:], sep="\n  ")
    # Mosquitto warns when a client re-uses a packet id it still holds, with other content.
    problems += [f"mosquitto: {line}" for line in warnings if "Reused message ID" in line]
    problems += [f"loop exception handler got: {ctx!r}" for ctx in loop_errors]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    problems += [f"logged at {r.levelname}: {r.getMessage()}" for r in errors]
    summary["problems"] = len(problems)
    text = json.dumps(summary, sort_keys=True)
    print(text)
    if os.environ.get(REPORT_ENV):
        await asyncio.to_thread(_append_line, os.environ[REPORT_ENV], text)
    if problems:
        shown = "\n".join(f"- {p}" for p in problems[:40])
        more = f"\n(and {len(problems) - 40} more)" if len(problems) > 40 else ""
        raise AssertionError(f"{len(problems)} violation(s):\n{shown}{more}\n{_replay(variant)}")


async def _run(
    variant: Variant,
    broker: MosquittoBroker,
    proxies: list[FaultProxy],
    closers: list[Connection],
) -> tuple[dict[str, Any], list[str]]:
    loop = asyncio.get_running_loop()
    subs = Subscribers(broker)
    pubs = [ChaosPublisher(i, proxy) for i, proxy in enumerate(proxies)]
    everyone = [*subs.conns, subs.probe, *(p.conn for p in pubs)]
    closers.extend(everyone)
    for conn in everyone:
        conn.start()
    for conn in everyone:
        await conn.wait_for(ConnectionState.CONNECTED, SETTLE_TIMEOUT)
    faults = FaultLog()
    faults.epochs.append(await subs.ready(SETTLE_TIMEOUT))

    # --- chaos
    start = faults.start = loop.time()
    until = start + CHAOS_SECONDS
    async with asyncio.TaskGroup() as tracks:  # one failing track cancels the others
        tracks.create_task(
            broker_track(broker, subs, variant, variant.rng(SEED, "broker"), start, until, faults)
        )
        for pub in pubs:
            tracks.create_task(
                network_track(
                    pub.proxy, pub.name, variant.rng(SEED, pub.name), start, until, faults
                )
            )
            tracks.create_task(publish_loop(pub, until))

    # --- heal and drain, each step with a deadline
    for proxy in proxies:
        await asyncio.to_thread(proxy.accept)
        await asyncio.to_thread(proxy.pass_through)
    if not broker.is_running:
        await asyncio.to_thread(broker.start)
    for conn in everyone:
        await conn.wait_for(ConnectionState.CONNECTED, SETTLE_TIMEOUT)
    await subs.ready(SETTLE_TIMEOUT)
    tail_from = {p.name: len(p.sent) for p in pubs}
    for _ in range(TAIL):
        for pub in pubs:
            pub.publish_next(loop.time())
    await _until(
        lambda: all(p.pending() == 0 for p in pubs), SETTLE_TIMEOUT, "every publish has an outcome"
    )

    ready_from = faults.epochs[-1]
    required: dict[str, set[int]] = {}
    for pub in pubs:
        required[pub.name] = {
            s.seq
            for s in pub.sent
            if s.outcome == "acked"
            and (variant.persistence or s.called_at >= ready_from or s.seq >= tail_from[pub.name])
        }

    def delivered_everywhere() -> bool:
        return all(required[p.name] <= tape.seen[p.name] for tape in subs.tapes for p in pubs)

    with contextlib.suppress(TimeoutError):  # what is missing is reported below
        await _until(delivered_everywhere, SETTLE_TIMEOUT, "required messages delivered")
    await subs.ready(SETTLE_TIMEOUT)  # a last probe: what the broker had queued is through

    return _analyse(variant, pubs, subs, faults, required, tail_from, loop.time() - start)


def _parse(message: Message) -> tuple[str, int, int]:
    """``(publisher, qos, seq)`` of a chaos message (ValueError if it is not one)."""
    _, name, q = message.topic.split("/")
    owner, seq = message.payload.decode().split(":")
    if owner != name:
        raise ValueError(f"payload {message.payload!r} on topic {message.topic!r}")
    return name, int(q[1:]), int(seq)


def _analyse(
    variant: Variant,
    pubs: list[ChaosPublisher],
    subs: Subscribers,
    faults: FaultLog,
    required: dict[str, set[int]],
    tail_from: dict[str, int],
    elapsed: float,
) -> tuple[dict[str, Any], list[str]]:
    problems: list[str] = []
    outcomes: Counter[str] = Counter()
    by_pub: dict[str, ChaosPublisher] = {p.name: p for p in pubs}
    reconnects: dict[str, int] = {}
    for pub in pubs:
        counted = Counter(s.outcome for s in pub.sent)
        outcomes.update(counted)
        # A QoS 2 exchange cut by a lost session (a broker restarted without persistence)
        # cannot be confirmed, and must say so; a persistent broker never loses the session.
        honest_doubts = () if variant.persistence else ("may_be_lost",)
        for outcome in ("pending", "anomalous", "refused", "closed", "may_be_lost"):
            if outcome in honest_doubts:
                continue
            if counted[outcome]:
                examples = [
                    (s.seq, s.results, s.errors, s.completed)
                    for s in pub.sent
                    if s.outcome == outcome
                ][:3]
                problems.append(
                    f"{pub.name}: {counted[outcome]} publish(es) {outcome}, e.g. {examples}"
                )
        dropped_by_error = {s.seq for s in pub.sent if s.outcome == "dropped"}
        reported = [int(d.message.payload.split(b":")[1]) for d in pub.dropped.items]
        if len(reported) != len(set(reported)):
            problems.append(f"{pub.name}: a message was reported on `dropped` twice")
        if set(reported) != dropped_by_error:
            problems.append(
                f"{pub.name}: dropped errors {sorted(dropped_by_error)[:10]}... do not match "
                f"`dropped` items {sorted(reported)[:10]}..."
            )
        for seq in range(tail_from[pub.name], len(pub.sent)):
            if pub.sent[seq].outcome != "acked":
                problems.append(f"{pub.name}: tail publish {seq} {pub.sent[seq].outcome}")
        gave_up = [e for e in pub.events.items if isinstance(e, GaveUp)]
        if gave_up:
            problems.append(f"{pub.name}: gave up: {gave_up}")
        reconnects[pub.name] = sum(isinstance(e, Connected) for e in pub.events.items) - 1

    per_sub: list[dict[str, Any]] = []
    lost = 0
    for index, tape in enumerate(subs.tapes):
        name = f"sub{index}"
        copies: dict[tuple[str, int, int], int] = Counter()
        arrival: dict[tuple[str, int], list[tuple[int, float]]] = defaultdict(list)
        for message, at in zip(tape.messages, tape.arrived, strict=True):
            try:
                pub_name, qos, seq = _parse(message)
                entry = by_pub[pub_name].sent[seq]
            except (ValueError, KeyError, IndexError):
                problems.append(f"{name}: phantom message {message!r}")
                continue
            if entry.qos != qos:
                problems.append(f"{name}: {pub_name}:{seq} arrived on the QoS {qos} topic")
            copies[(pub_name, qos, seq)] += 1
            arrival[(pub_name, qos)].append((seq, round(at - faults.start, 2)))
        q2_dups = {k: n for k, n in copies.items() if k[1] == 2 and n > 1}
        q2_dup_times = {
            k: [at for seq, at in arrival[(k[0], 2)] if seq == k[2]] for k in sorted(q2_dups)[:5]
        }
        q1_dups = sum(n - 1 for k, n in copies.items() if k[1] == 1)
        if q2_dups:
            problems.append(
                f"{name}: {len(q2_dups)} QoS 2 message(s) delivered more than once, e.g. "
                f"{sorted(q2_dups.items())[:5]}, arriving at (s) {q2_dup_times}"
            )
        order_violations = 0
        for (pub_name, qos), seqs in sorted(arrival.items()):
            firsts: list[tuple[int, float]] = []
            seen: set[int] = set()
            for seq, at in seqs:
                if seq not in seen:
                    seen.add(seq)
                    firsts.append((seq, at))
            bad = [(a, b) for a, b in itertools.pairwise(firsts) if b[0] <= a[0]]
            if bad:
                order_violations += len(bad)
                problems.append(
                    f"{name}: order broken on chaos/{pub_name}/q{qos}: {len(bad)} time(s) a "
                    f"message overtook an older one, e.g. ((seq, s), (older seq, s)) {bad[:5]}"
                )
        for pub in pubs:
            got = {seq for (p, _, seq) in copies if p == pub.name}
            missing = required[pub.name] - got
            lost += len(missing)
            if missing:
                problems.append(
                    f"{name}: {len(missing)} acknowledged {pub.name} message(s) never arrived "
                    f"(provably deliverable), e.g. {sorted(missing)[:10]}"
                )
            leaked = {s.seq for s in pub.sent if s.outcome == "dropped"} & got
            if leaked:
                problems.append(
                    f"{name}: {len(leaked)} message(s) reported dropped were delivered anyway, "
                    f"e.g. {sorted(leaked)[:10]}"
                )
        if tape.error is not None:
            problems.append(f"{name}: messages() errored: {tape.error!r}")
        events = subs.events[index].items
        per_sub.append(
            {
                "received": len(tape.messages),
                "distinct": len(copies),
                "qos1_duplicates": q1_dups,
                "qos2_duplicates": sum(n - 1 for n in q2_dups.values()),
                "order_violations": order_violations,
                "reconnects": sum(isinstance(e, Connected) for e in events) - 1,
                "sessions_lost": sum(isinstance(e, SessionLost) for e in events),
            }
        )

    summary: dict[str, Any] = {
        "variant": variant.name,
        "seed": SEED,
        "chaos_seconds": CHAOS_SECONDS,
        "elapsed_seconds": round(elapsed, 1),
        "publishes": sum(len(p.sent) for p in pubs),
        "outcomes": dict(outcomes),
        "dropped_by_policy": outcomes["dropped"],
        "required_deliveries_per_subscriber": sum(len(r) for r in required.values()),
        "lost": lost,
        "publisher_reconnects": reconnects,
        "reconnects_total": sum(reconnects.values()) + sum(s["reconnects"] for s in per_sub),
        "subscribers": per_sub,
        "faults": dict(faults.counts),
        "faults_total": sum(faults.counts.values()),
        "broker_epochs": len(faults.epochs),
    }
    print("chaos schedule:", *faults.lines, sep="\n  ")
    if problems:
        for pub in pubs:
            lines = [f"{at - faults.start:7.2f}s {text}" for at, text in pub.timeline]
            print(f"{pub.name} lifecycle:", *lines, sep="\n  ")
    return summary, problems
