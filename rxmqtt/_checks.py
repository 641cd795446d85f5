"""Argument checks shared by every layer (policies, operators, settings, presets): each failure
is an immediate ``TypeError``/``ValueError`` whose message starts with the argument's name."""

from __future__ import annotations

import math


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


def check_count(argument: str, value: object, *, optional: bool = False) -> None:
    """A non-negative int (or None when ``optional``).

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
    if value < 0:
        raise ValueError(f"{argument}: must be >= 0, got {value!r}")


def check_int_between(argument: str, value: object, low: int, high: int) -> int:
    """An int (not a bool) in ``low..high``.

    >>> check_int_between("keep_alive", 70000, 0, 65535)
    Traceback (most recent call last):
    ...
    ValueError: keep_alive: must be between 0 and 65535, got 70000
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument}: must be an int, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{argument}: must be between {low} and {high}, got {value!r}")
    return value


def check_callable(argument: str, value: object, *, optional: bool = False) -> None:
    """A callable (or None when ``optional``)."""
    if not (callable(value) or (optional and value is None)):
        raise TypeError(f"{argument}: must be callable{_or_none(optional)}, got {value!r}")


def _or_none(optional: bool) -> str:
    return " or None" if optional else ""
