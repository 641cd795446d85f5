"""ReconnectPolicy and PublishRetry: defaults, validation messages, fatal-code lookup."""

from __future__ import annotations

import math

import pytest

from rxmqtt.policies import (
    Backoff,
    Jitter,
    PublishRetry,
    ReconnectPolicy,
    is_fatal_reason_code,
)


def test_reconnect_defaults() -> None:
    policy = ReconnectPolicy()
    assert policy.backoff == Backoff(0.5, 30.0, 2.0, Jitter.FULL)
    assert policy.max_attempts is None
    assert policy.reset_after == 30.0
    assert policy.retry_first_connect is True
    assert policy.is_fatal is is_fatal_reason_code


def test_design_example_constructs() -> None:
    policy = ReconnectPolicy(
        backoff=Backoff(initial=0.5, maximum=30.0, jitter=Jitter.FULL),
        max_attempts=None,
        reset_after=30.0,
    )
    assert policy == ReconnectPolicy()
    assert ReconnectPolicy(max_attempts=0, reset_after=math.inf).reset_after == math.inf


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"backoff": 1.0}, TypeError, "backoff: must be a Backoff, got 1.0"),
        ({"max_attempts": -1}, ValueError, "max_attempts: must be >= 0, got -1"),
        ({"max_attempts": 2.0}, TypeError, "max_attempts: must be an int or None, got 2.0"),
        ({"max_attempts": True}, TypeError, "max_attempts: must be an int or None, got True"),
        ({"reset_after": -0.1}, ValueError, "reset_after: must be >= 0 seconds, got -0.1"),
        ({"reset_after": math.nan}, ValueError, "reset_after: must be >= 0 seconds, got nan"),
        ({"reset_after": "30"}, TypeError, "reset_after: must be a number, got '30'"),
        ({"retry_first_connect": 1}, TypeError, "retry_first_connect: must be a bool, got int"),
        ({"is_fatal": 0x86}, TypeError, "is_fatal: must be callable, got 134"),
    ],
)
def test_reconnect_validation(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        ReconnectPolicy(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_is_fatal_in_uses_the_table_per_packet() -> None:
    policy = ReconnectPolicy()
    assert policy.is_fatal_in(0x95, "CONNACK")
    assert not policy.is_fatal_in(0x95, "DISCONNECT")
    assert policy.is_fatal_in(0x86, "CONNACK")
    assert policy.is_fatal_in(0x8E, "DISCONNECT")
    assert not policy.is_fatal_in(0x81, "DISCONNECT")
    assert not policy.is_fatal_in(0x9F, "CONNACK")


def test_is_fatal_in_calls_a_custom_predicate_with_the_code() -> None:
    seen: list[int] = []

    def only_banned(code: int) -> bool:
        seen.append(code)
        return code == 0x8A

    policy = ReconnectPolicy(is_fatal=only_banned)
    assert not policy.is_fatal_in(0x86, "CONNACK")
    assert policy.is_fatal_in(0x8A, "DISCONNECT")
    assert seen == [0x86, 0x8A]


def test_publish_retry_defaults() -> None:
    retry = PublishRetry()
    assert retry.ack_timeout == 30.0
    assert retry.max_attempts == 3
    assert retry.backoff == Backoff(initial=0.5, maximum=10.0)
    assert PublishRetry(ack_timeout=None, max_attempts=0).ack_timeout is None


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"ack_timeout": 0},
            ValueError,
            "ack_timeout: must be a finite number of seconds > 0 or None, got 0",
        ),
        (
            {"ack_timeout": math.inf},
            ValueError,
            "ack_timeout: must be a finite number of seconds > 0 or None, got inf",
        ),
        ({"ack_timeout": "5"}, TypeError, "ack_timeout: must be a number, got '5'"),
        ({"max_attempts": -3}, ValueError, "max_attempts: must be >= 0, got -3"),
        ({"max_attempts": None}, TypeError, "max_attempts: must be an int, got None"),
        ({"backoff": None}, TypeError, "backoff: must be a Backoff, got None"),
    ],
)
def test_publish_retry_validation(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        PublishRetry(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_policies_are_frozen() -> None:
    with pytest.raises(AttributeError):
        ReconnectPolicy().max_attempts = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        PublishRetry().max_attempts = 3  # type: ignore[misc]
