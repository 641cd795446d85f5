"""Parsing text values (URL query parameters, environment variables); errors name the source."""

from __future__ import annotations

__all__ = ["_parse_bool", "_parse_float", "_parse_int", "_parse_list", "_parse_optional_seconds"]

_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


def _parse_bool(text: str, argument: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{argument}: must be true, false, 1 or 0, got {text!r}")


def _parse_int(text: str, argument: str) -> int:
    stripped = text.strip()
    if not (stripped.isascii() and stripped.lstrip("-").isdigit()):
        raise ValueError(f"{argument}: must be an integer, got {text!r}")
    return int(stripped)


def _parse_float(text: str, argument: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{argument}: must be a number, got {text!r}") from None
    return value


def _parse_optional_seconds(text: str, argument: str) -> float | None:
    """A number of seconds, or ``none``/``off`` for None (the setting is switched off)."""
    if text.strip().lower() in ("none", "off"):
        return None
    return _parse_float(text, argument)


def _parse_list(text: str) -> tuple[str, ...]:
    """Comma-separated names, spaces around them dropped (the setting checks each)."""
    return tuple(part.strip() for part in text.split(","))
