"""Finding and loading the METL cases: one YAML file per case, defaults from ``defaults.toml``.

The cases are AIO's data, read from the directory named by ``RXMQTT_METL_CASES`` or, when that
is unset, ``../shared/aio-metl/Protocol`` beside the repository; never copied into it.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CASES = REPO.parent / "shared" / "aio-metl" / "Protocol"
ENVOYS = ("TelemetrySender", "TelemetryReceiver", "CommandInvoker", "CommandExecutor")


def cases_dir() -> Path | None:
    """Where the cases are, or ``None`` when neither the variable nor the default exists."""
    named = os.environ.get("RXMQTT_METL_CASES")
    if named:
        path = Path(named)
        return path if path.is_dir() else None
    return DEFAULT_CASES if DEFAULT_CASES.is_dir() else None


@dataclass(frozen=True)
class Case:
    """One case file and its envoy's defaults."""

    envoy: str
    path: Path
    defaults: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.stem

    def load(self) -> dict[str, Any]:
        document: dict[str, Any] = yaml.safe_load(self.path.read_text(encoding="utf-8"))
        return document


def discover() -> list[Case]:
    """Every case under :func:`cases_dir`, sorted by envoy and name."""
    root = cases_dir()
    if root is None:
        return []
    found: list[Case] = []
    for envoy in ENVOYS:
        folder = root / envoy
        if not folder.is_dir():
            continue
        defaults_file = folder / "defaults.toml"
        defaults = tomllib.loads(defaults_file.read_text()) if defaults_file.exists() else {}
        found.extend(Case(envoy, path, defaults) for path in sorted(folder.glob("*.yaml")))
    return found


def merged(defaults: dict[str, Any] | None, given: dict[str, Any] | None) -> dict[str, Any]:
    """``given`` over ``defaults``, field by field within the ``serializer`` table; any other
    value (durations, metadata, token maps) is replaced whole. An explicit ``null`` in ``given``
    stays ``None`` (the case means "absent", not "default")."""
    out = dict(defaults or {})
    for key, value in (given or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key in _MERGED:
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


_MERGED = {"serializer"}
"""Tables whose fields a case overrides one by one."""


def seconds(duration: dict[str, int] | None) -> float | None:
    """A METL duration as seconds."""
    if duration is None:
        return None
    return (
        duration.get("hours", 0) * 3600
        + duration.get("minutes", 0) * 60
        + duration.get("seconds", 0)
        + duration.get("milliseconds", 0) / 1000
        + duration.get("microseconds", 0) / 1_000_000
    )
