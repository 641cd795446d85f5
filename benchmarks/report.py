"""Rendering: the machine a run happened on, and the Markdown result table."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import textwrap
from collections.abc import Iterable
from importlib import metadata

from benchmarks._common import Row, X
from rxmqtt.testing import find_mosquitto


def _command(args: list[str]) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout + done.stderr


def cpu_model() -> str:
    """``lscpu``'s model name (``/proc/cpuinfo`` as a fallback)."""
    if shutil.which("lscpu"):
        match = re.search(r"^Model name:\s*(.+)$", _command(["lscpu"]), re.MULTILINE)
        if match:
            return match.group(1).strip()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mosquitto_version() -> str:
    try:
        text = _command([find_mosquitto(), "-h"])
    except Exception:
        return "not found"
    match = re.search(r"mosquitto version (\S+)", text)
    return match.group(1) if match else "unknown"


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpus() -> int | None:
    """What ``nproc`` prints: the CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def machine() -> dict[str, str]:
    """The facts that make a table comparable: CPUs, CPU model, OS, versions."""
    return {
        "CPUs (nproc)": str(_cpus()),
        "CPU": cpu_model(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "paho-mqtt": _version("paho-mqtt"),
        "reactivex": _version("reactivex"),
        "mosquitto": mosquitto_version(),
        "aiomqtt": _version("aiomqtt"),
        "gmqtt": _version("gmqtt"),
        "rxmqtt": _version("rxmqtt"),
    }


def _number(value: float | None, measure: str) -> str:
    if value is None:
        return "—"
    if measure.startswith("msg/s") or measure.startswith("B/"):
        return f"{value:,.0f}"
    if measure.startswith(X) or measure.startswith("s"):
        return f"{value:.2f}" if measure.startswith(X) else f"{value:.3f}"
    return f"{value:.2f}"


def _verdict(row: Row) -> str:
    if not row.target:
        return ""
    if row.met is None:
        return f"{row.target} (n/a)"
    return f"{row.target} {'✅ met' if row.met else '❌ missed'}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(rows: Iterable[Row]) -> str:
    """The Markdown table: rxmqtt beside its reference, the ratio, the target verdict."""
    lines = [
        "| Scenario | Measure | rxmqtt | Reference | Reference value | rxmqtt / ref "
        "| Target | Notes |",
        "|---|---|--:|---|--:|--:|---|---|",
    ]
    for row in rows:
        ratio = row.ratio
        lines.append(
            "| "
            + " | ".join(
                _cell(part)
                for part in (
                    row.scenario,
                    row.measure + (" ↓" if row.better == "lower" else ""),
                    _number(row.rxmqtt, row.measure),
                    row.reference,
                    _number(row.reference_value, row.measure) if row.reference else "",
                    f"{ratio:.2f}{X}" if ratio is not None else "",
                    _verdict(row),
                    row.note,
                )
            )
            + " |"
        )
    return "\n".join(lines)


def load_average() -> str:
    """The 1/5/15-minute load averages: other work on the machine skews every number."""
    try:
        return " / ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def document(
    rows: list[Row], *, command: str, sizes_name: str, seconds: float, load_before: str
) -> str:
    """The whole Markdown output: header, machine, the table, a legend."""
    facts = machine()
    facts["Load average (1/5/15 min)"] = f"{load_before} before, {load_average()} after"
    machine_lines = "\n".join(f"- {key}: {value}" for key, value in facts.items())
    met = [row for row in rows if row.met is not None]
    summary = f"{sum(1 for row in met if row.met)}/{len(met)} targets met"
    return (
        f"## rxmqtt benchmarks ({sizes_name} run, {seconds:.0f} s)\n\n"
        f"Command: `{command}`\n\n"
        f"{machine_lines}\n\n"
        f"{table(rows)}\n\n"
        + textwrap.fill(
            f"{summary}. Ratios are rxmqtt / reference; ↓ marks measures where lower is better "
            "(for those a ratio below 1 favours rxmqtt). Rates are the median of the runs; "
            "every end-to-end run checks that each message arrived exactly once.",
            width=100,
        )
        + "\n"
    )
