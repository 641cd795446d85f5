"""Argument validation shared by the settings types: each failure names the argument first."""

from __future__ import annotations

import ipaddress
import math
import os
import unicodedata
from pathlib import Path

from ._secrets import SecretProvider

__all__ = [
    "_MAX_UINT16",
    "_MAX_UINT32",
    "_check_bool",
    "_check_host",
    "_check_int",
    "_check_path",
    "_check_seconds",
    "_check_secret",
    "_check_text",
]

_MAX_UINT16 = 0xFFFF
_MAX_UINT32 = 0xFFFFFFFF


def _check_int(value: object, argument: str, low: int, high: int, unit: str = "") -> int:
    """Return ``value`` if it is an int (not bool) in ``low..high``, else raise naming it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument}: must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{argument}: must be >= {low}{unit}, got {value}")
    if value > high:
        raise ValueError(f"{argument}: must be <= {high}{unit}, got {value}")
    return value


def _check_seconds(value: object, argument: str) -> float:
    """Return ``value`` as a float if it is a finite number of seconds > 0, else raise naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{argument}: must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{argument}: must be > 0 seconds, got {value}")
    return float(value)


def _check_bool(value: object, argument: str) -> bool:
    """Return ``value`` if it is a bool, else raise ``TypeError`` naming ``argument``."""
    if not isinstance(value, bool):
        raise TypeError(f"{argument}: must be a bool, got {type(value).__name__}")
    return value


def _check_text(value: object, argument: str, *, allow_empty: bool = True) -> str:
    """Return ``value`` if it is a str that fits an MQTT UTF-8 string (<= 65535 bytes, no NUL)."""
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
    if size > _MAX_UINT16:
        raise ValueError(f"{argument}: must be at most {_MAX_UINT16} UTF-8 bytes, got {size}")
    return value


def _check_path(value: object, argument: str) -> Path:
    """Return ``value`` as a ``Path`` to an existing regular file, else raise naming it."""
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


def _check_secret(value: object, argument: str) -> str | bytes | SecretProvider:
    """Accept a str, bytes (bytearray/memoryview copied) or zero-argument callable."""
    if isinstance(value, bytearray | memoryview):
        value = bytes(value)
    if isinstance(value, str | bytes):
        try:
            size = len(value.encode("utf-8") if isinstance(value, str) else value)
        except UnicodeEncodeError:
            raise ValueError(f"{argument}: must be valid UTF-8") from None
        if size > _MAX_UINT16:
            raise ValueError(f"{argument}: must be at most {_MAX_UINT16} bytes, got {size}")
        return value
    if callable(value):
        return value
    raise TypeError(
        f"{argument}: must be str, bytes or a callable returning one, got {type(value).__name__}"
    )


def _check_host(value: object, argument: str) -> str:
    """Return a host name or IP address (IPv6 brackets removed), else raise naming it."""
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
