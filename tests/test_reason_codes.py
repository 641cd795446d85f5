"""The one table of MQTT 5 reason codes: names, fatal set, unknown codes, documentation."""

from __future__ import annotations

import inspect

import pytest

from rxmqtt.policies import (
    REASON_CODES,
    ReasonCodeInfo,
    is_fatal_reason_code,
    is_per_message_disconnect_code,
    is_retriable_publish_code,
    reason_name,
)
from rxmqtt.policies._reason_codes import _render_table

# Refused CONNACKs that retrying with the same settings cannot cure (0x9C/0x9D: when they carry
# no Server Reference; with one the reconnect loop follows it, see test_session_edges.py).
FATAL_ON_CONNACK = {
    0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C, 0x8E, 0x90, 0x95, 0x99, 0x9A, 0x9B, 0x9C, 0x9D,
}  # fmt: skip
# Of those, the ones that in a DISCONNECT were about a PUBLISH and so are worth reconnecting.
RETRIABLE_ON_DISCONNECT = {0x90, 0x95, 0x99, 0x9A, 0x9B}

CONNACK_CODES = {
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95,
    0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
}  # fmt: skip
DISCONNECT_CODES = {
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8C, 0x8D, 0x8E, 0x8F, 0x90, 0x93,
    0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
}  # fmt: skip
PUBACK_CODES = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99}


def test_every_connack_disconnect_and_puback_code_is_in_the_table() -> None:
    for packet, codes in [
        ("CONNACK", CONNACK_CODES),
        ("DISCONNECT", DISCONNECT_CODES),
        ("PUBACK", PUBACK_CODES),
    ]:
        listed = {code for code, info in REASON_CODES.items() if packet in info.packets}
        assert listed == codes, packet


def test_rows_are_consistent() -> None:
    for code, info in REASON_CODES.items():
        assert isinstance(info, ReasonCodeInfo)
        assert info.code == code
        assert info.name
        assert info.why
        if info.fatal:
            assert code >= 0x80


def test_fatal_set_on_connack() -> None:
    fatal = {code for code in range(256) if is_fatal_reason_code(code)}
    assert fatal == FATAL_ON_CONNACK
    assert {code for code in range(256) if is_fatal_reason_code(code, "CONNACK")} == fatal


def test_fatal_set_on_disconnect() -> None:
    fatal = {code for code in range(256) if is_fatal_reason_code(code, "DISCONNECT")}
    assert fatal == FATAL_ON_CONNACK - RETRIABLE_ON_DISCONNECT
    assert fatal == {0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C, 0x8E, 0x9C, 0x9D}


def test_the_per_message_disconnect_codes_are_the_ones_retried_on_disconnect() -> None:
    """A DISCONNECT about one PUBLISH reconnects (and the publish is given up when it repeats)."""
    per_message = {code for code in range(256) if is_per_message_disconnect_code(code)}
    assert per_message == RETRIABLE_ON_DISCONNECT


@pytest.mark.parametrize(
    "code",
    [
        0x00,  # success / normal disconnection
        0x04,  # disconnect with will message
        0x80,  # unspecified
        0x81,  # malformed packet: a proxy-injected garbage byte must lead to a reconnect
        0x82,  # protocol error: same
        0x83,
        0x88,  # server unavailable
        0x89,  # server busy
        0x8B,  # server shutting down
        0x8D,  # keep alive timeout
        0x93,
        0x97,  # quota exceeded
        0x98,  # administrative action
        0x9F,  # connection rate exceeded: backing off is the cure
    ],
)
def test_retriable_codes(code: int) -> None:
    assert not is_fatal_reason_code(code)
    assert not is_fatal_reason_code(code, "DISCONNECT")


@pytest.mark.parametrize("code", [0x03, 0x7F, 0xA3, 0xC0, 0xFE, 0xFF])
def test_unknown_codes_are_named_and_not_fatal(code: int) -> None:
    assert code not in REASON_CODES
    assert reason_name(code) == f"Unknown reason code 0x{code:02X}"
    assert not is_fatal_reason_code(code)
    assert not is_fatal_reason_code(code, "DISCONNECT")


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0x00, "Success"),
        (0x04, "Disconnect with Will Message"),
        (0x81, "Malformed Packet"),
        (0x86, "Bad User Name or Password"),
        (0x87, "Not authorized"),
        (0x8A, "Banned"),
        (0x8E, "Session taken over"),
        (0x95, "Packet too large"),
        (0x97, "Quota exceeded"),
        (0x9F, "Connection rate exceeded"),
        (0xA2, "Wildcard Subscriptions not supported"),
    ],
)
def test_names(code: int, name: str) -> None:
    assert reason_name(code) == name
    assert REASON_CODES[code].name == name


def test_zero_is_normal_disconnection_in_a_disconnect() -> None:
    assert reason_name(0x00, "DISCONNECT") == "Normal disconnection"
    assert reason_name(0x8B, "DISCONNECT") == "Server shutting down"
    assert reason_name(0x00, "CONNACK") == "Success"
    assert reason_name(0x5A, "DISCONNECT") == "Unknown reason code 0x5A"


def test_retriable_publish_codes() -> None:
    assert {code for code in range(256) if is_retriable_publish_code(code)} == {0x89, 0x97}


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        REASON_CODES[0x01] = REASON_CODES[0x00]  # type: ignore[index]


def test_documented_table_matches_the_data() -> None:
    doc = inspect.getdoc(is_fatal_reason_code)
    assert doc is not None
    assert _render_table() in doc, "re-render the docstring table with _render_table()"
