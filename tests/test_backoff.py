"""Backoff and Jitter: exact sequences for a seeded RNG, properties, and validation."""

from __future__ import annotations

import math
import random
from itertools import islice

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxmqtt.policies import Backoff, Jitter

N = 40


def take(backoff: Backoff, n: int = N, seed: int | None = 1234) -> list[float]:
    rng = random.Random(seed) if seed is not None else None
    return list(islice(backoff.delays(rng), n))


def bases(initial: float, maximum: float, multiplier: float, n: int = N) -> list[float]:
    return [min(maximum, initial * multiplier**k) for k in range(n)]


# --- exact sequences, computed by the AWS formulas --------------------------------------------


def test_none_is_the_capped_exponential() -> None:
    assert take(Backoff(0.5, 30.0, 2.0, Jitter.NONE), 10) == [
        0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0
    ]  # fmt: skip
    assert take(Backoff(0.3, 7.0, 3.0, Jitter.NONE)) == bases(0.3, 7.0, 3.0)


def test_none_consumes_no_randomness() -> None:
    rng = random.Random(5)
    list(islice(Backoff(1, 10, jitter=Jitter.NONE).delays(rng), 10))
    assert rng.random() == random.Random(5).random()


@pytest.mark.parametrize("seed", [0, 1, 42, 2024])
def test_full_jitter_exact(seed: int) -> None:
    rng = random.Random(seed)
    expected = [rng.uniform(0, base) for base in bases(0.5, 30.0, 2.0)]
    assert take(Backoff(0.5, 30.0, 2.0, Jitter.FULL), seed=seed) == expected


@pytest.mark.parametrize("seed", [0, 1, 42, 2024])
def test_equal_jitter_exact(seed: int) -> None:
    rng = random.Random(seed)
    expected = [base / 2 + rng.uniform(0, base / 2) for base in bases(1.0, 20.0, 1.5)]
    assert take(Backoff(1.0, 20.0, 1.5, Jitter.EQUAL), seed=seed) == expected


@pytest.mark.parametrize("seed", [0, 1, 42, 2024])
def test_decorrelated_jitter_exact(seed: int) -> None:
    rng = random.Random(seed)
    expected = []
    sleep = 0.5
    for _ in range(N):
        sleep = min(30.0, rng.uniform(0.5, sleep * 3))
        expected.append(sleep)
    # DECORRELATED ignores multiplier (the article's factor is 3).
    assert take(Backoff(0.5, 30.0, 7.0, Jitter.DECORRELATED), seed=seed) == expected


def test_default_is_full_jitter_with_documented_values() -> None:
    backoff = Backoff()
    assert (backoff.initial, backoff.maximum, backoff.multiplier, backoff.jitter) == (
        0.5,
        30.0,
        2.0,
        Jitter.FULL,
    )


def test_without_rng_uses_fresh_randomness() -> None:
    delays = take(Backoff(1, 100), 20, seed=None)
    assert all(0 <= d <= 100 for d in delays)


def test_each_call_is_a_fresh_sequence() -> None:
    backoff = Backoff(1, 100, jitter=Jitter.NONE)
    first = backoff.delays()
    next(first), next(first)
    assert next(backoff.delays()) == 1.0


@pytest.mark.parametrize("jitter", list(Jitter))
def test_no_overflow_for_huge_retry_counts(jitter: Jitter) -> None:
    backoff = Backoff(1.0, 60.0, 1e300, jitter)
    delay = next(islice(backoff.delays(random.Random(3)), 100_000, None))
    assert 0 <= delay <= 60.0
    assert next(islice(Backoff(1.0, 60.0, 10.0, Jitter.NONE).delays(), 5000, None)) == 60.0


def test_zero_initial_and_constant_multiplier() -> None:
    assert take(Backoff(0, 10, jitter=Jitter.NONE), 5) == [0.0] * 5
    assert take(Backoff(0, 10, jitter=Jitter.DECORRELATED), 5) == [0.0] * 5
    assert take(Backoff(2, 10, 1, Jitter.NONE), 5) == [2.0] * 5
    assert take(Backoff(3, 3, jitter=Jitter.NONE), 3) == [3.0] * 3


def test_base_delays_is_the_unjittered_sequence() -> None:
    backoff = Backoff(0.25, 5.0, 3.0, Jitter.FULL)
    assert list(islice(backoff.base_delays(), N)) == bases(0.25, 5.0, 3.0)


# --- properties ---------------------------------------------------------------------------------

backoffs = st.builds(
    lambda initial, extra, multiplier, jitter: Backoff(
        initial, initial + extra, multiplier, jitter
    ),
    initial=st.floats(0, 1e3, allow_nan=False),
    extra=st.floats(0, 1e4, allow_nan=False),
    multiplier=st.floats(1, 1e3, allow_nan=False),
    jitter=st.sampled_from(Jitter),
)
seeds = st.integers(0, 2**32)


@given(backoffs, seeds)
def test_every_delay_is_within_zero_and_maximum(backoff: Backoff, seed: int) -> None:
    for delay in take(backoff, 60, seed):
        assert 0 <= delay <= backoff.maximum


@given(backoffs, seeds)
def test_none_is_monotonic_and_capped(backoff: Backoff, seed: int) -> None:
    delays = take(Backoff(backoff.initial, backoff.maximum, backoff.multiplier, Jitter.NONE), 60)
    assert delays == sorted(delays)
    assert delays[0] == min(backoff.initial, backoff.maximum)
    assert max(delays) <= backoff.maximum


@given(backoffs, seeds)
def test_decorrelated_stays_within_initial_and_maximum(backoff: Backoff, seed: int) -> None:
    decorrelated = Backoff(
        backoff.initial, backoff.maximum, backoff.multiplier, Jitter.DECORRELATED
    )
    for delay in take(decorrelated, 60, seed):
        assert backoff.initial <= delay <= backoff.maximum


@given(backoffs, seeds)
def test_equal_stays_within_half_base_and_base(backoff: Backoff, seed: int) -> None:
    equal = Backoff(backoff.initial, backoff.maximum, backoff.multiplier, Jitter.EQUAL)
    for delay, base in zip(take(equal, 60, seed), equal.base_delays(), strict=False):
        assert base / 2 <= delay <= base


@given(backoffs, seeds)
def test_full_stays_within_zero_and_base(backoff: Backoff, seed: int) -> None:
    full = Backoff(backoff.initial, backoff.maximum, backoff.multiplier, Jitter.FULL)
    for delay, base in zip(take(full, 60, seed), full.base_delays(), strict=False):
        assert 0 <= delay <= base


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"initial": -1}, ValueError, "initial: must be >= 0 seconds, got -1"),
        ({"initial": math.nan}, ValueError, "initial: must be >= 0 seconds, got nan"),
        ({"initial": math.inf}, ValueError, "initial: must be a finite number of seconds"),
        ({"initial": "1"}, TypeError, "initial: must be a number, got '1'"),
        ({"initial": True}, TypeError, "initial: must be a number, got True"),
        ({"maximum": -2.5}, ValueError, "maximum: must be >= 0 seconds, got -2.5"),
        (
            {"initial": 5, "maximum": 1},
            ValueError,
            "maximum: must be >= initial (5 seconds), got 1",
        ),
        ({"maximum": math.inf}, ValueError, "maximum: must be a finite number of seconds"),
        ({"multiplier": 0.5}, ValueError, "multiplier: must be a finite number >= 1, got 0.5"),
        ({"multiplier": math.nan}, ValueError, "multiplier: must be a finite number >= 1"),
        ({"multiplier": math.inf}, ValueError, "multiplier: must be a finite number >= 1"),
        ({"multiplier": None}, TypeError, "multiplier: must be a number, got None"),
        ({"jitter": "full"}, TypeError, "jitter: must be a Jitter, got 'full'"),
    ],
)
def test_validation(kwargs: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        Backoff(**kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)


def test_rng_must_be_a_random() -> None:
    with pytest.raises(TypeError, match=r"^rng: must be a random.Random or None"):
        Backoff().delays(42)  # type: ignore[arg-type]


def test_backoff_is_a_frozen_hashable_value() -> None:
    assert Backoff(1, 2) == Backoff(1, 2)
    assert hash(Backoff(1, 2)) == hash(Backoff(1, 2))
    with pytest.raises(AttributeError):
        Backoff().initial = 3  # type: ignore[misc]
