"""The scenarios of the benchmark run, each turning measurements into result rows.

A failing peer (not installed, crashed, lost messages) becomes a row with a note; it never stops
the run. A failing rxmqtt measurement is recorded in ``Row.errors`` so the run exits non-zero.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from benchmarks import failure, latency, many_connections, offline_queue, scaling, throughput
from benchmarks._common import (
    Row,
    Sizes,
    Throughput,
    X,
    bench_broker,
    median,
    percentile,
    settle,
    try_import,
)

T = TypeVar("T")

E2E_TARGETS: dict[str, tuple[str, float | None]] = {
    "paho loop_start": (f"≥ 1.0{X}", 1.0),
    "paho asyncio": (f"≥ 0.9{X}", 0.9),
    "aiomqtt": (f"≥ 3{X}", 3.0),
    "gmqtt": (f"≥ 1.0{X}", 1.0),
}
"""End-to-end rate, rxmqtt / peer: each peer's floor (gmqtt's from issue 23)."""

LATENCY_TARGETS: dict[str, tuple[str, float]] = {
    "paho asyncio": (f"≤ 1.0{X}", 1.0),
}
"""Publish latency p50 and p99, rxmqtt / peer: no worse than paho driven by asyncio (issue 23).
"""


def log(text: str) -> None:
    """Progress goes to stderr; the table alone goes to stdout."""
    print(text, file=sys.stderr, flush=True)


def _attempt(label: str, func: Callable[[], T]) -> T | Exception:
    """Run one measurement; an exception is returned (and logged), not raised."""
    settle()
    try:
        return func()
    except Exception as exc:
        log(f"  {label}: FAILED: {exc!r}")
        traceback.print_exc(file=sys.stderr)
        return exc


def _short(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 80 else text[:77] + "..."


def _ratio_met(rx: float | None, ref: float | None, minimum: float | None) -> bool | None:
    if minimum is None or rx is None or not ref:
        return None
    return rx / ref >= minimum


# --------------------------------------------------------------------------- throughput


def _median_rate(runs: list[Throughput | Exception]) -> tuple[float | None, str]:
    """The median rate of complete runs, and a note about failed or incomplete ones."""
    good = [r.rate for r in runs if isinstance(r, Throughput) and r.complete]
    problems = [
        r.describe() if isinstance(r, Throughput) else _short(r)
        for r in runs
        if not (isinstance(r, Throughput) and r.complete)
    ]
    note = f"{len(good)}/{len(runs)} runs complete" if problems else ""
    if problems:
        note += "; " + "; ".join(dict.fromkeys(problems))
    return median(good), note


def end_to_end(sizes: Sizes, qos: int) -> list[Row]:
    """QoS ``qos`` end to end: rxmqtt against every peer, runs interleaved, median rate."""
    name = f"QoS {qos} end to end"
    count = sizes.e2e_messages
    log(f"{name}: {count:,} messages x {sizes.e2e_repeats} runs per client")
    runners: dict[str, throughput.E2ERunner] = {
        "rxmqtt": throughput.run_rxmqtt,
        AWAITED: throughput.run_rxmqtt_awaited,
    }
    missing: dict[str, str] = {}
    for peer, (runner, module) in throughput.PEERS.items():
        why = try_import(module) if module else None
        if why is None:
            runners[peer] = runner
        else:
            missing[peer] = why
    runs: dict[str, list[Throughput | Exception]] = {label: [] for label in runners}
    with bench_broker() as broker:
        data = throughput.data_for(count)
        for repeat in range(sizes.e2e_repeats):
            for label, runner in runners.items():
                result = _attempt(
                    label, partial(runner, broker.host, broker.port, data, qos, sizes.e2e_timeout)
                )
                runs[label].append(result)
                if isinstance(result, Throughput):
                    log(
                        f"  run {repeat + 1} {label:<16} {result.rate:>10,.0f} msg/s  "
                        f"{result.describe()}"
                    )
    rx_rate, rx_note = _median_rate(runs["rxmqtt"])
    rows: list[Row] = []
    errors = [f"{name}: rxmqtt {rx_note}"] if rx_note or rx_rate is None else []
    for peer in throughput.PEERS:
        target, minimum = E2E_TARGETS[peer]
        if peer in missing:
            rows.append(Row(name, "msg/s", rx_rate, peer, None, target=target, note=missing[peer]))
            continue
        ref_rate, ref_note = _median_rate(runs[peer])
        rows.append(
            Row(
                name,
                "msg/s",
                rx_rate,
                peer,
                ref_rate,
                target=target,
                met=_ratio_met(rx_rate, ref_rate, minimum),
                note="; ".join(_run_notes(count, rx_note, ref_note)),
                errors=errors,
            )
        )
        errors = []  # reported once
    if "aiomqtt" not in missing:
        rows.append(_awaited_row(name, count, runs[AWAITED], runs["aiomqtt"]))
    return rows


def _run_notes(count: int, rx_note: str, ref_note: str) -> list[str]:
    """What went wrong in either side's runs, or that every message arrived in all of them."""
    notes = [n for n in (f"rxmqtt: {rx_note}" if rx_note else "", ref_note) if n]
    return notes or [f"all {count:,} received in every run"]


AWAITED = "rxmqtt awaited"
"""rxmqtt awaiting each publish outcome (``asyncio.gather`` of 100), exactly like the aiomqtt
run: the same application code, so the two compare without the eager-publish advantage."""


def _awaited_row(
    name: str,
    count: int,
    awaited: list[Throughput | Exception],
    aiomqtt: list[Throughput | Exception],
) -> Row:
    rx_rate, rx_note = _median_rate(awaited)
    ref_rate, ref_note = _median_rate(aiomqtt)
    notes = ["both await every publish, gathered 100 at a time"]
    notes += _run_notes(count, rx_note, ref_note)
    return Row(
        f"{name}, publishes awaited",
        "msg/s",
        rx_rate,
        "aiomqtt",
        ref_rate,
        note="; ".join(notes),
        errors=[f"{name}, awaited: rxmqtt {rx_note}"] if rx_note or rx_rate is None else [],
    )


# --------------------------------------------------------------------------- scaling


def subscription_scaling(sizes: Sizes) -> list[Row]:
    """Delivery rate to one filter among 1, 100, 10,000; rxmqtt and raw paho on_message."""
    name = "Subscription scaling"
    count = sizes.scaling_messages
    log(f"{name}: {count:,} QoS 0 messages to 1 of {sizes.scaling_filters} filters")
    rx: dict[int, Throughput | Exception] = {}
    paho: dict[int, Throughput | Exception] = {}
    with bench_broker() as broker:
        data = throughput.data_for(count)
        for filters in sizes.scaling_filters:
            for label, results, runner in (
                ("rxmqtt", rx, scaling.run_rxmqtt),
                ("paho", paho, scaling.run_paho),
            ):
                result = _attempt(
                    f"{label} {filters} filters",
                    partial(runner, broker.host, broker.port, filters, data, sizes.e2e_timeout),
                )
                results[filters] = result
                if isinstance(result, Throughput):
                    log(
                        f"  {label:<7} {filters:>6,} filters {result.rate:>10,.0f} msg/s  "
                        f"{result.describe()}"
                    )

    def rate(result: Throughput | Exception | None) -> float | None:
        return result.rate if isinstance(result, Throughput) and result.complete else None

    def note(result: Throughput | Exception | None) -> str:
        if isinstance(result, Throughput):
            return result.describe()
        return _short(result) if isinstance(result, Exception) else "not run"

    live = sizes.live_subscribe_filters
    setup: dict[str, float | Exception] = {}
    with bench_broker() as broker:
        for label, func in (
            ("rxmqtt", scaling.live_setup_rxmqtt),
            ("paho", scaling.live_setup_paho),
        ):
            setup[label] = _attempt(
                f"{label} live subscribe", partial(func, broker.host, broker.port, live, 120.0)
            )
            if isinstance(setup[label], float):
                log(f"  {label:<7} {live:,} subscribes on a live connection: {setup[label]:.2f} s")

    base = sizes.scaling_filters[0]
    rows: list[Row] = []
    for filters in sizes.scaling_filters:
        rx_rate = rate(rx.get(filters))
        errors = [] if rx_rate is not None else [f"{name} {filters}: {note(rx.get(filters))}"]
        if filters != base:
            largest = filters == max(sizes.scaling_filters)
            rows.append(
                Row(
                    f"{name}: {filters:,} filters",
                    "msg/s",
                    rx_rate,
                    f"rxmqtt, {base} filter",
                    rate(rx.get(base)),
                    target=f"≥ 0.8{X}" if largest else "",
                    met=_ratio_met(rx_rate, rate(rx.get(base)), 0.8) if largest else None,
                    note=note(rx.get(filters)),
                    errors=errors,
                )
            )
            errors = []
        rows.append(
            Row(
                f"{name}: {filters:,} filter{'s' if filters != 1 else ''}",
                "msg/s",
                rx_rate,
                f"paho on_message, {filters:,} filter{'s' if filters != 1 else ''}",
                rate(paho.get(filters)),
                note=f"paho: {note(paho.get(filters))}",
                errors=errors,
            )
        )
    rx_setup, paho_setup = setup["rxmqtt"], setup["paho"]
    rows.append(
        Row(
            f"{name}: subscribe {live:,} filters on a live connection",
            "s",
            rx_setup if isinstance(rx_setup, float) else None,
            "paho loop_start",
            paho_setup if isinstance(paho_setup, float) else None,
            better="lower",
            note="; ".join(
                [
                    "from the first subscribe call until the last filter is live",
                    *(
                        f"{label}: {_short(value)}"
                        for label, value in setup.items()
                        if isinstance(value, Exception)
                    ),
                ]
            ),
            errors=[] if isinstance(rx_setup, float) else [f"{name} live subscribe: {rx_setup}"],
        )
    )
    return rows


# --------------------------------------------------------------------------- offline queue


def offline_queue_rows(sizes: Sizes) -> list[Row]:
    """Memory per queued message and enqueue/drain rates, memory and SQLite stores."""
    name = "Offline queue"
    count = sizes.queue_messages
    log(f"{name}: {count:,} queued 64-byte messages per store")
    result = _attempt("offline queue", lambda: offline_queue.measure(count))
    if isinstance(result, Exception):
        return [Row(name, "B/msg", None, note=_short(result), errors=[f"{name}: {result!r}"])]
    rows: list[Row] = []
    for store in result:
        memory = store.store == "memory"
        rows += [
            Row(
                f"{name} ({store.store}): overhead per message",
                "B/msg",
                store.overhead,
                better="lower",
                target="≤ 300 B" if memory else "",
                met=store.overhead <= 300 if memory else None,
                note=(
                    f"{count:,} queued; total {store.bytes_total:.0f} B/msg incl. Message and "
                    f"payload, {store.bytes_queue:.0f} B/msg by the queue alone"
                    + ("" if memory else "; Python heap only (SQLite's cache is not traced)")
                ),
            ),
            Row(f"{name} ({store.store}): enqueue", "msg/s", store.enqueue_rate),
            Row(f"{name} ({store.store}): drain", "msg/s", store.drain_rate),
        ]
    return rows


# --------------------------------------------------------------------------- failures


def keepalive_detection(sizes: Sizes) -> list[Row]:
    """Black-holed network: detection latency as a multiple of keep_alive."""
    keep_alive = sizes.keep_alive
    name = f"Keep-alive detection (keep_alive {keep_alive} s)"
    log(f"{name}: {sizes.detection_samples} sample(s) per client")
    rx: list[float] = []
    paho: list[float] = []
    problems: list[str] = []
    with bench_broker() as broker:
        for _ in range(sizes.detection_samples):
            for label, samples, func in (
                ("rxmqtt", rx, failure.rx_keepalive),
                ("paho loop_start", paho, failure.paho_keepalive),
            ):
                result = _attempt(label, partial(func, broker, keep_alive))
                if isinstance(result, Exception):
                    problems.append(f"{label}: {_short(result)}")
                else:
                    samples.append(result / keep_alive)
                    log(f"  {label:<16} {result:.2f} s = {result / keep_alive:.2f} x keep_alive")
    rx_worst = max(rx) if rx else None
    spread = (
        f"rxmqtt {min(rx):.2f}-{max(rx):.2f}{X}, paho "
        + (f"{min(paho):.2f}-{max(paho):.2f}{X}" if paho else "n/a")
        if rx
        else ""
    )
    return [
        Row(
            name,
            f"{X} keep_alive (worst)",
            rx_worst,
            "paho loop_start",
            max(paho) if paho else None,
            better="lower",
            target=f"≤ 1.5{X}",
            met=rx_worst <= 1.5 if rx_worst is not None else None,
            note="; ".join([f"{len(rx)} sample(s)", spread, *problems]).strip("; "),
            errors=[f"{name}: rxmqtt not measured"] if not rx else [],
        )
    ]


def broker_restart(sizes: Sizes) -> list[Row]:
    """Broker restart: seconds from accepting again to CONNECTED (and beyond the backoff)."""
    name = "Broker restart → CONNECTED"
    log(f"{name}: {sizes.restart_samples} sample(s) per client")
    rx: list[failure.Restart] = []
    paho: list[failure.Restart] = []
    problems: list[str] = []
    for _ in range(sizes.restart_samples):
        for label, samples, func in (
            ("rxmqtt", rx, failure.rx_restart),
            ("paho loop_start", paho, failure.paho_restart),
        ):
            result = _attempt(label, func)
            if isinstance(result, Exception):
                problems.append(f"{label}: {_short(result)}")
            else:
                samples.append(result)
                pending = (
                    "" if result.pending is None else f" (pending backoff {result.pending:.3f} s)"
                )
                log(f"  {label:<16} {result.latency:.3f} s after accept{pending}")
    beyond = [r.latency - (r.pending or 0.0) for r in rx]
    backoff = failure.RESTART_BACKOFF
    policy = f"backoff {backoff.initial:g}-{backoff.maximum:g} s, no jitter"
    return [
        Row(
            f"{name}: after the broker accepts",
            "s (median)",
            median([r.latency for r in rx]),
            "paho loop_start",
            median([r.latency for r in paho]),
            better="lower",
            note="; ".join([f"{len(rx)} sample(s), {policy}", *problems]),
            errors=[f"{name}: rxmqtt not measured"] if not rx else [],
        ),
        Row(
            f"{name}: beyond the pending backoff delay",
            "s (worst)",
            max(beyond) if beyond else None,
            better="lower",
            target="≤ 0.25 s",
            met=max(beyond) <= 0.25 if beyond else None,
            note="latency minus the backoff delay still pending when the broker came back",
        ),
    ]


# --------------------------------------------------------------------------- latency


def publish_latency(sizes: Sizes) -> list[Row]:
    """p50/p99 publish → PUBACK at a fixed rate, QoS 1."""
    rate_hz = sizes.latency_rate
    seconds = sizes.latency_seconds
    count = int(rate_hz * seconds)
    name = f"Publish latency, QoS 1 at {rate_hz:,} msg/s"
    log(f"{name}: {count:,} messages per client")
    runners: dict[str, latency.LatencyRunner] = {"rxmqtt": latency.run_rxmqtt}
    missing: dict[str, str] = {}
    for peer, (runner, module) in latency.PEERS.items():
        why = try_import(module) if module else None
        if why is None:
            runners[peer] = runner
        else:
            missing[peer] = why
    results: dict[str, list[float] | Exception] = {}
    with bench_broker() as broker:
        for label, runner in runners.items():
            result = _attempt(label, partial(runner, broker.host, broker.port, rate_hz, seconds))
            results[label] = result
            if not isinstance(result, Exception) and result:
                log(
                    f"  {label:<16} p50 {percentile(result, 0.5) * 1e3:.2f} ms  "
                    f"p99 {percentile(result, 0.99) * 1e3:.2f} ms  ({len(result):,}/{count:,})"
                )

    def stat(label: str, fraction: float) -> float | None:
        values = results.get(label)
        if isinstance(values, list) and len(values) == count:
            return percentile(values, fraction) * 1e3
        return None

    def note(label: str) -> str:
        values = results.get(label)
        if isinstance(values, Exception):
            return _short(values)
        if values is None:
            return missing.get(label, "not run")
        if len(values) != count:
            return f"INCOMPLETE: {len(values):,}/{count:,} acknowledged"
        return f"{count:,} acknowledged"

    rx_note = note("rxmqtt")
    errors = [] if stat("rxmqtt", 0.5) is not None else [f"{name}: rxmqtt {rx_note}"]
    rows: list[Row] = []
    for peer in [*latency.PEERS, "gmqtt"]:
        target, maximum = LATENCY_TARGETS.get(peer, ("", None))
        for label, fraction in (("p50", 0.5), ("p99", 0.99)):
            ref_note = (
                "gmqtt has no per-publish acknowledgement API" if peer == "gmqtt" else note(peer)
            )
            rx_value, ref_value = stat("rxmqtt", fraction), stat(peer, fraction)
            rows.append(
                Row(
                    f"{name}: {label}",
                    "ms",
                    rx_value,
                    peer,
                    ref_value,
                    better="lower",
                    target=target,
                    met=None if maximum is None else _at_most(rx_value, ref_value, maximum),
                    note=f"rxmqtt: {rx_note}; {peer}: {ref_note}",
                    errors=errors,
                )
            )
            errors = []
    return rows


# --------------------------------------------------------------------------- many connections

MANY_TARGETS: dict[str, tuple[str, float]] = {
    "memory": (f"≤ 1.0{X} gmqtt", 1.0),
    "idle": (f"≤ 1.0{X} gmqtt", 1.0),
}
"""Memory and idle CPU per connection: no worse than gmqtt's in the same run (issue 23)."""


def _at_most(rx: float | None, ref: float | None, maximum: float) -> bool | None:
    if rx is None or not ref:
        return None
    return rx / ref <= maximum


def many_connections_rows(sizes: Sizes) -> list[Row]:
    """N idle connections in one process: connect, memory, idle CPU, restart, delivery."""
    count = sizes.many_connections
    keep_alive = many_connections.KEEP_ALIVE
    name = f"Many connections ({count:,}, keep-alive {keep_alive} s)"
    log(f"{name}: one process per client library, idle {sizes.many_idle_seconds:g} s")
    many_connections.raise_file_limit(many_connections.files_needed(count) * 2)
    libraries = ["rxmqtt"]
    gmqtt_missing = try_import("gmqtt")
    if gmqtt_missing is None:
        libraries.append("gmqtt")
    results: dict[str, many_connections.Measures] = {}
    with bench_broker() as broker:
        for library in libraries:
            settle()
            measures = many_connections.measure(library, count, sizes.many_idle_seconds, broker)
            many_connections.measure_heap(library, count, broker, measures)
            results[library] = measures
            for error in measures.errors:
                log(f"  {library}: FAILED: {error}")
            log(f"  {library:<7} {_describe_many(measures)}")
            for holder in measures.top_holders:
                log(f"    heap: {holder}")
    rx = results["rxmqtt"]
    ref = results.get("gmqtt")
    missing_note = gmqtt_missing or ""

    def ref_value(attribute: str, scale: float = 1.0) -> float | None:
        value = getattr(ref, attribute) if ref is not None else None
        return None if value is None else value / scale

    def ref_note() -> str:
        if ref is None:
            return missing_note
        return "; ".join(ref.errors)

    kib = 1024.0
    memory_target, memory_max = MANY_TARGETS["memory"]
    idle_target, idle_max = MANY_TARGETS["idle"]
    rx_memory = rx.rss_per_connection / kib if rx.rss_per_connection is not None else None
    rx_heap = rx.traced_per_connection
    ref_heap = ref.traced_per_connection if ref is not None else None
    heap_note = "Python heap (tracemalloc): rxmqtt " + (
        f"{rx_heap / kib:.1f} KiB" if rx_heap is not None else "n/a"
    )
    heap_note += ", gmqtt " + (f"{ref_heap / kib:.1f} KiB" if ref_heap is not None else "n/a")
    reconnect = rx.reconnect_seconds
    rows = [
        Row(
            f"{name}: time to all connected",
            "s",
            rx.connect_seconds,
            "gmqtt",
            ref_value("connect_seconds"),
            better="lower",
            note="; ".join(
                n
                for n in ("until every connection is up and its subscription granted", ref_note())
                if n
            ),
            errors=list(rx.errors),
        ),
        Row(
            f"{name}: memory per connection",
            "KiB (RSS)",
            rx_memory,
            "gmqtt",
            ref_value("rss_per_connection", kib),
            better="lower",
            target=memory_target,
            met=_at_most(rx_memory, ref_value("rss_per_connection", kib), memory_max),
            note=f"resident memory after minus before, / {count:,}; {heap_note}",
        ),
        Row(
            f"{name}: idle CPU, whole process",
            "% of a core",
            rx.idle_cpu_percent,
            "gmqtt",
            ref_value("idle_cpu_percent"),
            better="lower",
            target=idle_target,
            met=_at_most(rx.idle_cpu_percent, ref_value("idle_cpu_percent"), idle_max),
            note=f"process CPU time / wall over {sizes.many_idle_seconds:g} s with nothing to do",
        ),
        Row(
            f"{name}: all reconnected after a broker restart",
            "s",
            reconnect,
            "gmqtt",
            ref_value("reconnect_seconds"),
            better="lower",
            target=f"≤ {many_connections.RECONNECT_TARGET:g} s",
            met=reconnect <= many_connections.RECONNECT_TARGET if reconnect is not None else None,
            note=(
                f"from the broker accepting again; backoff {many_connections.BACKOFF.initial:g}-"
                f"{many_connections.BACKOFF.maximum:g} s, full jitter (gmqtt: fixed "
                f"{many_connections.GMQTT_RECONNECT_DELAY:g} s); every subscription granted "
                "again after "
                + ("n/a" if rx.resubscribe_seconds is None else f"{rx.resubscribe_seconds:.2f} s")
            ),
        ),
        Row(
            f"{name}: one QoS 1 message to each after the restart",
            "received",
            float(rx.received) if rx.received is not None else None,
            "gmqtt",
            float(ref.received) if ref is not None and ref.received is not None else None,
            note=f"rxmqtt: {rx.unique} unique of {count:,} sent"
            + (f"; gmqtt: {ref.unique} unique" if ref is not None else ""),
        ),
    ]
    return rows


def _describe_many(m: many_connections.Measures) -> str:
    def fmt(value: float | None, spec: str, unit: str = "", scale: float = 1.0) -> str:
        return "n/a" if value is None else f"{value / scale:{spec}}{unit}"

    return (
        f"connected {fmt(m.connect_seconds, '.2f', ' s')}, "
        f"RSS {fmt(m.rss_per_connection, '.1f', ' KiB', 1024)}/conn, "
        f"heap {fmt(m.traced_per_connection, '.1f', ' KiB', 1024)}/conn, "
        f"idle CPU {fmt(m.idle_cpu_percent, '.2f', ' %')}, "
        f"reconnected {fmt(m.reconnect_seconds, '.2f', ' s')} "
        f"(resubscribed {fmt(m.resubscribe_seconds, '.2f', ' s')}), "
        f"received {m.received}/{m.connections} ({m.unique} unique)"
    )


SCENARIOS: dict[str, Callable[[Sizes], list[Row]]] = {
    "e2e-qos0": lambda sizes: end_to_end(sizes, 0),
    "e2e-qos1": lambda sizes: end_to_end(sizes, 1),
    "scaling": subscription_scaling,
    "queue": offline_queue_rows,
    "keepalive": keepalive_detection,
    "restart": broker_restart,
    "latency": publish_latency,
    "many": many_connections_rows,
}
"""Scenario key (for ``--only``) -> function producing its rows, in table order."""
