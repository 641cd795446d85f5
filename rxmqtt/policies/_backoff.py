"""Exponential backoff with jitter: a pure, inspectable sequence of delays.

The formulas follow the AWS Architecture Blog article "Exponential Backoff And Jitter"
(Marc Brooker, 2015).
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from .._checks import check_instance, check_number, check_seconds

__all__ = ["Backoff", "Jitter"]


_SHARED_RANDOM = random.Random()
"""The jitter's source when the caller gives none (seeded from the OS at import)."""


class Jitter(enum.Enum):
    """How randomness is mixed into an exponential backoff.

    With ``base(n) = min(maximum, initial * multiplier ** n)`` for retry ``n + 1``:

    ========================  ===========================================================
    ``NONE``                  ``base(n)`` -- deterministic; every client retries in lockstep
    ``FULL``                  ``uniform(0, base(n))`` -- the article's recommendation
    ``EQUAL``                 ``base(n) / 2 + uniform(0, base(n) / 2)`` -- never shorter than half
    ``DECORRELATED``          ``min(maximum, uniform(initial, previous * 3))``, ``previous``
                              starting at ``initial``; the factor 3 is the article's and
                              ``multiplier`` is not used
    ========================  ===========================================================
    """

    NONE = "none"
    FULL = "full"
    EQUAL = "equal"
    DECORRELATED = "decorrelated"


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff between retries, optionally jittered (see :class:`Jitter`).

    Args:
        initial: seconds before the first retry (before jitter); ``>= 0``.
        maximum: cap on any delay, in seconds; ``>= initial``.
        multiplier: growth factor per retry; ``>= 1`` (1 gives a constant delay).
        jitter: how randomness is mixed in; ``FULL`` spreads reconnecting clients best.

    The policy is a value: :meth:`delays` turns it into the delays themselves, so it can be
    inspected and tested without running anything::

        >>> from itertools import islice
        >>> list(islice(Backoff(1, 10, jitter=Jitter.NONE).delays(), 6))
        [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]

    Raises:
        TypeError: an argument has the wrong type (the message names it).
        ValueError: an argument is out of range (the message names it).
    """

    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: Jitter = Jitter.FULL

    def __post_init__(self) -> None:
        initial = check_seconds("initial", self.initial)
        maximum = check_seconds("maximum", self.maximum)
        if maximum < initial:
            raise ValueError(
                f"maximum: must be >= initial ({self.initial!r} seconds), got {self.maximum!r}"
            )
        multiplier = check_number("multiplier", self.multiplier)
        if not (multiplier >= 1) or math.isinf(multiplier):
            raise ValueError(f"multiplier: must be a finite number >= 1, got {self.multiplier!r}")
        check_instance("jitter", self.jitter, Jitter, "a Jitter")

    def base_delays(self) -> Iterator[float]:
        """The un-jittered delays ``min(maximum, initial * multiplier ** n)``, ``n = 0, 1, ...``.

        Infinite. Once the cap is reached it stays there, so ``n`` can grow without bound
        without overflowing a float.
        """
        initial, maximum, multiplier = float(self.initial), float(self.maximum), self.multiplier
        n = 0
        while True:
            try:
                base = initial * multiplier**n
            except OverflowError:
                base = math.inf
            if base >= maximum:
                break
            yield base
            if multiplier == 1 or initial == 0:
                # Constant from here on: no need to keep raising to ever larger powers.
                while True:
                    yield base
            n += 1
        while True:
            yield maximum

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The delay, in seconds, before retry 1, 2, 3, ... (infinite; the caller stops it).

        Args:
            rng: the source of randomness for jitter; pass a seeded ``random.Random`` for a
                reproducible sequence. ``None`` uses one OS-seeded generator shared by every
                backoff (a generator of its own would cost each connection 2.5 KiB).

        Every delay is in ``[0, maximum]``; ``DECORRELATED`` delays are in ``[initial, maximum]``.
        """
        check_instance("rng", rng, random.Random, "a random.Random", optional=True)
        rand = rng if rng is not None else _SHARED_RANDOM
        if self.jitter is Jitter.DECORRELATED:
            return self._decorrelated(rand)
        return self._jittered(rand)

    def _jittered(self, rand: random.Random) -> Iterator[float]:
        jitter = self.jitter
        for base in self.base_delays():
            if jitter is Jitter.NONE:
                yield base
            elif jitter is Jitter.FULL:
                yield min(base, rand.uniform(0.0, base))
            else:  # EQUAL
                half = base / 2
                yield min(base, half + rand.uniform(0.0, half))

    def _decorrelated(self, rand: random.Random) -> Iterator[float]:
        initial, maximum = float(self.initial), float(self.maximum)
        sleep = initial
        while True:
            sleep = min(maximum, max(initial, rand.uniform(initial, sleep * 3)))
            yield sleep
