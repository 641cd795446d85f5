"""Developer sessions: ``nox -s tests``, ``lint``, ``typecheck``, ``demo``, ``bench``."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.default_venv_backend = "venv"

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite against real Mosquitto brokers (GUI tests offscreen)."""
    session.install("-e", ".[qt,test]")
    session.run("pytest", *session.posargs, env={"QT_QPA_PLATFORM": "offscreen"})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over rxmqtt and gui_demo."""
    session.install("-e", ".[qt,test,dev]")
    session.run("mypy")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The main job: the live demo on an embedded local Mosquitto."""
    session.install("-e", ".[qt]")
    session.run("python", "-m", "examples.live_streams", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against the peers (full run)."""
    session.install("-e", ".[test,bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The documentation site into site/, with --strict: broken links, anchors, references and
    unknown generated content fail the build."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session(python=PYTHON)
def soak(session: nox.Session) -> None:
    """The chaos test, longer: ``nox -s soak -- --minutes N [--seed S] [PYTEST ARGS]``.

    The N minutes (default 10) are split over the two variants (persistent / volatile broker);
    ``--seed`` (or ``RXMQTT_CHAOS_SEED``) replays a schedule. Each variant's JSON summary --
    publishes, outcomes, dropped-by-policy, lost, duplicates, faults, reconnects -- is printed
    and appended to ``soak-report.jsonl`` in the session's temp directory.
    """
    import argparse
    import os

    parser = argparse.ArgumentParser(prog="nox -s soak --")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=None)
    args, pytest_args = parser.parse_known_args(session.posargs)
    if args.minutes <= 0:
        session.error(f"--minutes: must be > 0, got {args.minutes}")
    session.install("-e", ".[test]")
    report = os.path.join(session.create_tmp(), "soak-report.jsonl")
    env = {
        "RXMQTT_CHAOS_SECONDS": f"{args.minutes * 60 / 2:g}",
        "RXMQTT_CHAOS_REPORT": report,
    }
    if args.seed is not None:
        env["RXMQTT_CHAOS_SEED"] = str(args.seed)
    session.run(
        "pytest",
        "tests/chaos/test_chaos.py",
        "-p",
        "no:cacheprovider",
        "-s",
        "-q",
        *pytest_args,
        env=env,
    )
    session.log(f"soak summaries: {report}")


@nox.session(python=PYTHON)
def gui_stress(session: nox.Session) -> None:
    """The control room's long stress run: ``nox -s gui_stress -- [--cycles N] [--seed S]``.

    N (default 200) Disconnect -> Connect cycles, mixed with broker crashes, graceful restarts,
    network cuts and resets, over four fresh windows, offscreen; the suite runs 14 of them.
    ``--seed`` (or ``RXMQTT_GUI_STRESS_SEED``) replays a schedule.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="nox -s gui_stress --")
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--seed", type=int, default=None)
    args, pytest_args = parser.parse_known_args(session.posargs)
    if args.cycles < 4:
        session.error(f"--cycles: must be >= 4, got {args.cycles}")
    session.install("-e", ".[qt,test]")
    env = {"QT_QPA_PLATFORM": "offscreen", "RXMQTT_GUI_STRESS_CYCLES": str(args.cycles)}
    if args.seed is not None:
        env["RXMQTT_GUI_STRESS_SEED"] = str(args.seed)
    session.run(
        "pytest",
        "tests/gui/test_control_room_stress.py",
        "-p",
        "no:cacheprovider",
        "-s",
        "-q",
        *pytest_args,
        env=env,
    )
