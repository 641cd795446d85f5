"""Argument checks shared by every layer (policies, operators, settings, presets, binders): each
failure is an immediate ``TypeError``/``ValueError`` whose message starts with the argument's
name. Pure: no paho, no sockets, no Qt."""

from __future__ import annotations

import ipaddress
import math
import os
import unicodedata
from collections.abc import Callable
from pathlib import Path

MAX_UINT16 = 0xFFFF
MAX_UINT32 = 0xFFFFFFFF


def check_number(argument: str, value: object) -> float:
    """``value`` as a float (bools are not numbers).

    >>> check_number("ratio", 2)
    2.0
    >>> check_number("ratio", True)
    Traceback (most recent call last):
    ...
    TypeError: ratio: must be a number, got True
    """
    return _number(argument, value, optional=False)


def _number(argument: str, value: object, *, optional: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{argument}: must be a number{_or_none(optional)}, got {value!r}")
    return float(value)


def check_seconds(argument: str, value: object, *, allow_inf: bool = False) -> float:
    """A non-negative duration in seconds (finite unless ``allow_inf``)."""
    seconds = check_number(argument, value)
    return _non_negative_seconds(argument, seconds, value, allow_inf=allow_inf, optional=False)


def check_optional_seconds(argument: str, value: object, *, allow_inf: bool = True) -> float | None:
    """Like :func:`check_seconds`, or None."""
    if value is None:
        return None
    seconds = _number(argument, value, optional=True)
    return _non_negative_seconds(argument, seconds, value, allow_inf=allow_inf, optional=True)


def _non_negative_seconds(
    argument: str, seconds: float, value: object, *, allow_inf: bool, optional: bool
) -> float:
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"{argument}: must be >= 0 seconds{_or_none(optional)}, got {value!r}")
    if math.isinf(seconds) and not allow_inf:
        raise ValueError(f"{argument}: must be a finite number of seconds, got {value!r}")
    return seconds


def check_count(argument: str, value: object, *, minimum: int = 0, optional: bool = False) -> None:
    """An int of at least ``minimum`` (or None when ``optional``).

    >>> check_count("max_attempts", None, optional=True)
    >>> check_count("max_attempts", -1)
    Traceback (most recent call last):
    ...
    ValueError: max_attempts: must be >= 0, got -1
    """
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument}: must be an int{_or_none(optional)}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{argument}: must be >= {minimum}, got {value!r}")


def check_int(argument: str, value: object, low: int, high: int, unit: str = "") -> int:
    """An int (not a bool) in ``low..high``; ``unit`` follows the bound in the message.

    >>> check_int("keep_alive", 70000, 0, MAX_UINT16, " seconds")
    Traceback (most recent call last):
    ...
    ValueError: keep_alive: must be <= 65535 seconds, got 70000
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument}: must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{argument}: must be >= {low}{unit}, got {value}")
    if value > high:
        raise ValueError(f"{argument}: must be <= {high}{unit}, got {value}")
    return value


def check_bool(argument: str, value: object) -> bool:
    """A bool (not merely truthy)."""
    if not isinstance(value, bool):
        raise TypeError(f"{argument}: must be a bool, got {type(value).__name__}")
    return value


def check_instance(
    argument: str, value: object, kind: type, what: str, *, optional: bool = False
) -> None:
    """An instance of ``kind`` (or None when ``optional``); ``what`` names it in the message.

    >>> check_instance("rng", 7, float, "a random.Random", optional=True)
    Traceback (most recent call last):
    ...
    TypeError: rng: must be a random.Random or None, got 7
    """
    if not (isinstance(value, kind) or (optional and value is None)):
        raise TypeError(f"{argument}: must be {what}{_or_none(optional)}, got {value!r}")


def check_text(argument: str, value: object, *, allow_empty: bool = True) -> str:
    """A str that fits an MQTT UTF-8 string (<= 65535 bytes, no NUL, no lone surrogate)."""
    if not isinstance(value, str):
        raise TypeError(f"{argument}: must be a str, got {type(value).__name__}")
    if not value and not allow_empty:
        raise ValueError(f"{argument}: must not be empty")
    if "\x00" in value:
        raise ValueError(f"{argument}: must not contain the null character U+0000")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{argument}: must be valid UTF-8 (contains a lone surrogate)") from None
    if size > MAX_UINT16:
        raise ValueError(f"{argument}: must be at most {MAX_UINT16} UTF-8 bytes, got {size}")
    return value


def check_path(argument: str, value: object) -> Path:
    """``value`` as a ``Path`` to an existing regular file."""
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"{argument}: must be a str or Path, got {type(value).__name__}")
    text = os.fspath(value)
    if not isinstance(text, str) or not text:
        raise ValueError(f"{argument}: must be a non-empty path")
    path = Path(text)
    if not path.exists():
        raise ValueError(f"{argument}: no such file: {path}")
    if not path.is_file():
        raise ValueError(f"{argument}: not a regular file: {path}")
    return path


def check_secret(argument: str, value: object) -> str | bytes | Callable[[], str | bytes]:
    """A secret: a str, bytes (bytearray/memoryview copied) or a zero-argument callable
    returning one. The message never shows the value."""
    if isinstance(value, bytearray | memoryview):
        value = bytes(value)
    if isinstance(value, str | bytes):
        try:
            size = len(value.encode("utf-8") if isinstance(value, str) else value)
        except UnicodeEncodeError:
            raise ValueError(f"{argument}: must be valid UTF-8") from None
        if size > MAX_UINT16:
            raise ValueError(f"{argument}: must be at most {MAX_UINT16} bytes, got {size}")
        return value
    if callable(value):
        return value
    raise TypeError(
        f"{argument}: must be str, bytes or a callable returning one, got {type(value).__name__}"
    )


def check_host(argument: str, value: object) -> str:
    """A host name or IP address (IPv6 brackets removed)."""
    if not isinstance(value, str):
        raise TypeError(f"{argument}: must be a str, got {type(value).__name__}")
    host = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    if not host:
        raise ValueError(f"{argument}: must not be empty")
    if any(c.isspace() or c in "/?#@[]" or unicodedata.category(c) in ("Cc", "Cs") for c in host):
        raise ValueError(f"{argument}: invalid host {value!r}")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(
                f"{argument}: {value!r} is neither a host name nor an IPv6 address "
                "(give the port separately)"
            ) from None
    return host


def check_callable(argument: str, value: object, *, optional: bool = False) -> None:
    """A callable (or None when ``optional``)."""
    if not (callable(value) or (optional and value is None)):
        raise TypeError(f"{argument}: must be callable{_or_none(optional)}, got {value!r}")


def _or_none(optional: bool) -> str:
    return " or None" if optional else ""


def check_positive_seconds(argument: str, value: object) -> float:
    """A finite number of seconds above 0.

    >>> check_positive_seconds("happy_eyeballs_delay", 0)
    Traceback (most recent call last):
    ...
    ValueError: happy_eyeballs_delay: must be > 0 seconds, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{argument}: must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{argument}: must be > 0 seconds, got {value}")
    return float(value)
