"""``python -m benchmarks [--quick] [--output PATH] [--only KEY,...] [--connections N]``: rxmqtt
beside its peers.

Every scenario runs against a Mosquitto the harness starts on 127.0.0.1 (and closes). Progress
goes to stderr, the Markdown table to stdout (and to ``--output``). The exit status is 1 when an
rxmqtt measurement failed (an error, or a message not delivered exactly once); a peer that is
missing or fails only gets a note in the table. Targets met or missed never change the status.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import signal
import sys
import time
from pathlib import Path

from benchmarks._common import FULL, QUICK, Row
from benchmarks.report import document, load_average
from benchmarks.scenarios import SCENARIOS, log


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="rxmqtt benchmarks against its peers"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for a CI smoke run (< 60 s)"
    )
    parser.add_argument("--output", type=Path, help="also write the Markdown table here")
    parser.add_argument(
        "--only",
        type=lambda text: [key.strip() for key in text.split(",") if key.strip()],
        default=None,
        help=f"comma-separated scenarios to run: {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=None,
        help="connections of the many-connections scenario (default: 1,000; --quick: 20)",
    )
    args = parser.parse_args(argv)
    if args.connections is not None and args.connections < 1:
        parser.error(f"--connections: must be at least 1, got {args.connections}")
    unknown = [key for key in (args.only or []) if key not in SCENARIOS]
    if unknown:
        parser.error(f"--only: unknown scenario(s) {', '.join(unknown)}")
    return args


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit`` so every ``finally`` runs: brokers, proxies and client
    threads are stopped even when a CI timeout terminates the run."""

    def handler(signum: int, _frame: object) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios, print the table, return the exit status."""
    args = _parse(argv)
    _exit_on_sigterm()
    sizes = QUICK if args.quick else FULL
    if args.connections is not None:
        sizes = dataclasses.replace(sizes, many_connections=args.connections)
    keys = args.only or list(SCENARIOS)
    started = time.monotonic()
    load_before = load_average()
    rows: list[Row] = []
    for key in keys:
        rows += SCENARIOS[key](sizes)
    command = "python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = document(
        rows,
        command=command.strip(),
        sizes_name=sizes.name,
        seconds=time.monotonic() - started,
        load_before=load_before,
    )
    print(text)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
    errors = [error for row in rows for error in row.errors]
    for error in errors:
        log(f"rxmqtt measurement failed: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
