"""Developer sessions: ``nox -s tests lint typecheck demo bench bounds seam``, and more below."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.default_venv_backend = "venv"

PYTHON = "3.11"

UNIT_LAYERS = [
    "tests/test_operators.py",
    "tests/test_queue.py",
    "tests/test_queue_properties.py",
    "tests/test_backoff.py",
    "tests/test_reconnect_policy.py",
    "tests/test_settings.py",
    "tests/test_secrets.py",
    "tests/test_topics.py",
    "tests/test_outcome.py",
    "tests/binders/test_envoy_units.py",
    "tests/test_engine_seams.py",
]
"""The layers that need neither Qt nor long broker runs: ``bounds_unit`` runs them (CI does)."""


def _requirements(*extras: str) -> list[str]:
    """pyproject's dependencies plus those of ``extras``, as written there."""
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    found = list(project["dependencies"])
    for extra in extras:
        found += project["optional-dependencies"][extra]
    return found


def _at_end(requirements: list[str], end: str) -> list[str]:
    """``oldest``: each requirement pinned to its ``>=`` floor; ``newest``: as written (pip then
    takes the newest release the upper bound allows, with ``--upgrade``)."""
    if end == "newest":
        return requirements
    pinned = []
    for requirement in requirements:
        name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
        floor = re.search(r">=\s*([^,;\s]+)", requirement)
        pinned.append(f"{name}=={floor.group(1)}" if floor else requirement)
    return pinned


def _install_end(session: nox.Session, end: str, *extras: str) -> None:
    """The project, its runtime requirements (and those of ``extras``) at ``end``, and the test
    tools (pytest and its plugins are not what the bounds are about: always their newest)."""
    tools = _requirements("test")[len(_requirements()) :]
    if "qt" not in extras:
        tools = [r for r in tools if not r.startswith(("pytest-qt", "build"))]
    session.install("--no-deps", "-e", ".")
    session.install(*tools)
    session.install("--upgrade", *_at_end(_requirements(*extras), end))
    session.run("python", "-m", "pip", "list", "--format=freeze", silent=False)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite against real Mosquitto brokers (GUI tests offscreen; the gates' ruff and
    mypy come with the dev extra)."""
    session.install("-e", ".[qt,test,dev]")
    session.run("pytest", *session.posargs, env={"QT_QPA_PLATFORM": "offscreen"})


@nox.session(python=PYTHON)
@nox.parametrize("end", ["oldest", "newest"])
def bounds(session: nox.Session, end: str) -> None:
    """The whole suite on the oldest and on the newest releases pyproject allows of every
    dependency (paho-mqtt, reactivex, PySide6, qasync). Not the static gates
    (tests/test_gates.py): ruff and mypy judge the code against the development versions'
    type stubs (``nox -s lint typecheck``), and old PySide6 stubs differ."""
    _install_end(session, end, "qt")
    gates = "--ignore=tests/test_gates.py"
    session.run("pytest", gates, *session.posargs, env={"QT_QPA_PLATFORM": "offscreen"})


@nox.session(python=PYTHON)
@nox.parametrize("end", ["oldest", "newest"])
def bounds_unit(session: nox.Session, end: str) -> None:
    """CI's share of ``bounds``: importing rxmqtt and its CLI, and the unit layers, on the oldest
    and newest paho-mqtt and reactivex (no Qt: the unit layers never import it)."""
    _install_end(session, end)
    session.run("python", "-c", "import rxmqtt.connection, rxmqtt.engine, rxmqtt.testing")
    session.run("python", "-m", "rxmqtt.cli", "--help", silent=True)
    session.run("pytest", *UNIT_LAYERS, *session.posargs)


def _paho_requirement() -> str:
    """pyproject's paho-mqtt requirement, e.g. ``paho-mqtt>=2.2,<3``."""
    (requirement,) = (r for r in _requirements() if r.startswith("paho-mqtt"))
    return requirement


def _paho_releases(session: nox.Session) -> list[str]:
    """Every paho-mqtt release on the index, newest first (``pip index versions``)."""
    out = session.run(
        "python", "-m", "pip", "index", "versions", "paho-mqtt", silent=True, external=False
    )
    found = re.search(r"Available versions:\s*(.+)", str(out))
    if found is None:
        session.error(f"pip index versions paho-mqtt: no release list in {out!r}")
    return [v.strip() for v in found.group(1).split(",")]


_REFUSES_TO_START = """
import asyncio
from rxmqtt import Connection, ConnectionSettings

async def main():
    conn = Connection(ConnectionSettings(host="127.0.0.1", port=1, client_id="below-floor"))
    try:
        conn.start()
    except RuntimeError as exc:
        print(f"Connection.start() refuses: {exc}")
    else:
        raise SystemExit("Connection.start() ran on a paho-mqtt below the floor")
    finally:
        await conn.close()

asyncio.run(main())
"""
"""On a paho-mqtt below the floor, ``Connection.start()`` must refuse, naming what is missing."""


@nox.session(python=PYTHON)
def seam(session: nox.Session) -> None:
    """The paho seam on each paho-mqtt minor pyproject allows (its newest patch): the seam check
    (``python -m rxmqtt.engine``) and tests/test_engine_seams.py; then the newest release below
    the floor, which must fail the seam check naming what it lacks (why the floor is there)."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    requirement = _paho_requirement()
    allowed = SpecifierSet(requirement.removeprefix("paho-mqtt"))
    _install_end(session, "newest")  # (no Qt: the seam tests never import it)
    releases = [Version(v) for v in _paho_releases(session)]
    newest_per_minor: dict[tuple[int, int], Version] = {}
    for version in releases:
        if version in allowed and not version.is_prerelease:
            minor = (version.major, version.minor)
            newest_per_minor[minor] = max(version, newest_per_minor.get(minor, version))
    if not newest_per_minor:
        session.error(f"no paho-mqtt release satisfies {requirement}")
    for version in sorted(newest_per_minor.values()):
        session.log(f"paho-mqtt {version} ({requirement}): the seam must hold")
        session.install(f"paho-mqtt=={version}")
        session.run("python", "-m", "rxmqtt.engine")
        session.run("pytest", "tests/test_engine_seams.py", "-q")
    below = [v for v in releases if v < min(newest_per_minor.values()) and not v.is_prerelease]
    if below:
        version = max(below)
        session.log(f"paho-mqtt {version}, below the floor: the seam check must refuse it")
        session.install(f"paho-mqtt=={version}")
        verdict = str(session.run("python", "-m", "rxmqtt.engine", success_codes=[1], silent=True))
        session.log(verdict)
        if "Traceback" in verdict or "relies on:" not in verdict:
            session.error("the seam check did not name what is missing")
        session.run("python", "-c", _REFUSES_TO_START)


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
