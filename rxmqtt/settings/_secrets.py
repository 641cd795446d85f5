"""Secrets that may rotate: providers, secret files re-read on every attempt, and encoding them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FileSecret", "SecretProvider", "_read_secret_file", "_strip_newline", "_to_bytes"]

SecretProvider = Callable[[], str | bytes]
"""A zero-argument callable returning a secret; called on every connection attempt."""


def _strip_newline(data: bytes) -> bytes:
    """Remove one trailing newline (``\\n`` or ``\\r\\n``), as editors and ``echo`` add one."""
    if data.endswith(b"\r\n"):
        return data[:-2]
    if data.endswith(b"\n"):
        return data[:-1]
    return data


def _read_secret_file(path: Path, argument: str) -> bytes:
    """Read ``path`` now; an ``OSError`` (subclass kept) names ``argument`` and the path."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OSError(exc.errno, f"{argument}: {exc.strerror or exc}", str(path)) from exc
    return _strip_newline(data)


def _to_bytes(value: str | bytes, argument: str) -> bytes:
    """Encode a resolved secret; anything but str/bytes is a ``TypeError`` naming ``argument``."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    raise TypeError(f"{argument}: provider returned {type(value).__name__}, expected str or bytes")


@dataclass(frozen=True, slots=True)
class FileSecret:
    """A secret provider that re-reads ``path`` on every call (rotating tokens, password files).

    Returns the file's bytes with one trailing newline removed; a read failure raises an
    ``OSError`` naming ``argument`` and the path (the connection turns it into a failed attempt).
    """

    path: Path
    argument: str = field(default="secret_file", compare=False)

    def __call__(self) -> bytes:
        """Read the secret now."""
        return _read_secret_file(Path(self.path), self.argument)
