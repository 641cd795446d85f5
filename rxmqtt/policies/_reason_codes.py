"""MQTT 5 reason codes: one table that names them and says which ones end reconnecting.

Everything that needs to know whether a reason code is worth retrying (the reconnect policy, the
connection's ``Disconnect.fatal``, the publish retry) asks this table, so there is exactly one
answer. The table itself is rendered in the docstring of :func:`is_fatal_reason_code`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = [
    "REASON_CODES",
    "V311_CONNACK_CODES",
    "ReasonCodeInfo",
    "ReasonPacket",
    "is_fatal_reason_code",
    "is_per_message_disconnect_code",
    "is_retriable_publish_code",
    "reason_name",
    "v311_connack_reason_code",
]

ReasonPacket = Literal["CONNACK", "DISCONNECT"]
"""The packets whose reason code can end a connection (attempt)."""


@dataclass(frozen=True)
class ReasonCodeInfo:
    """One row of :data:`REASON_CODES`.

    Attributes:
        code: the reason code byte.
        name: the name the MQTT 5 specification gives it.
        fatal: a CONNACK refusing the connection with this code will not be cured by trying
            again with the same settings, so the reconnect policy gives up (state ``FAILED``).
            For a DISCONNECT the answer is the same unless ``fatal_on_disconnect`` says otherwise.
        why: the reasoning behind ``fatal``, in one sentence.
        packets: the packets MQTT 5 allows it in (``"CONNACK"``, ``"DISCONNECT"``, ...).
        fatal_on_disconnect: set only where a DISCONNECT with this code is judged differently
            from a CONNACK refusal (e.g. ``Packet too large``: a CONNECT that is too large will be
            too large again, a PUBLISH that was too large is not a reason to stop reconnecting).
    """

    code: int
    name: str
    fatal: bool
    why: str
    packets: tuple[str, ...] = ()
    fatal_on_disconnect: bool | None = None

    def is_fatal(self, packet: ReasonPacket | None = None) -> bool:
        """Whether this code ends reconnecting when it arrives in ``packet`` (None: CONNACK)."""
        if packet == "DISCONNECT" and self.fatal_on_disconnect is not None:
            return self.fatal_on_disconnect
        return self.fatal


_CONNACK = "CONNACK"
_PUBACK = "PUBACK"
_PUBREC = "PUBREC"
_PUBREL = "PUBREL"
_PUBCOMP = "PUBCOMP"
_SUBACK = "SUBACK"
_UNSUBACK = "UNSUBACK"
_DISCONNECT = "DISCONNECT"
_AUTH = "AUTH"
_ANY_ACK = (_CONNACK, _PUBACK, _PUBREC, _SUBACK, _UNSUBACK, _DISCONNECT)
_PUB_ACKS = (_PUBACK, _PUBREC)


def _row(
    code: int,
    name: str,
    fatal: bool,
    why: str,
    packets: tuple[str, ...],
    fatal_on_disconnect: bool | None = None,
) -> tuple[int, ReasonCodeInfo]:
    return code, ReasonCodeInfo(code, name, fatal, why, packets, fatal_on_disconnect)


_ON_DISCONNECT_A_PUBLISH = (
    "as a DISCONNECT it was about one of our PUBLISHes: reconnect, and give that publish up "
    "when the refusal repeats"
)

REASON_CODES: Mapping[int, ReasonCodeInfo] = MappingProxyType(
    dict(
        [
            _row(
                0x00,
                "Success",
                False,
                "not an error (DISCONNECT: Normal disconnection)",
                (_CONNACK, *_PUB_ACKS, _PUBREL, _PUBCOMP, _SUBACK, _UNSUBACK, _AUTH, _DISCONNECT),
            ),
            _row(0x01, "Granted QoS 1", False, "not an error", (_SUBACK,)),
            _row(0x02, "Granted QoS 2", False, "not an error", (_SUBACK,)),
            _row(
                0x04,
                "Disconnect with Will Message",
                False,
                "the peer left on purpose; the server is still there",
                (_DISCONNECT,),
            ),
            _row(0x10, "No matching subscribers", False, "not an error", _PUB_ACKS),
            _row(0x11, "No subscription existed", False, "not an error", (_UNSUBACK,)),
            _row(0x18, "Continue authentication", False, "not an error", (_AUTH,)),
            _row(0x19, "Re-authenticate", False, "not an error", (_AUTH,)),
            _row(
                0x80, "Unspecified error", False, "no evidence that retrying cannot help", _ANY_ACK
            ),
            _row(
                0x81,
                "Malformed Packet",
                False,
                "usually a corrupted byte on the way (proxy, network); a new connection is clean",
                (_CONNACK, _DISCONNECT),
            ),
            _row(
                0x82,
                "Protocol Error",
                False,
                "usually a corrupted or reordered packet; a new connection starts clean",
                (_CONNACK, _DISCONNECT),
            ),
            _row(
                0x83,
                "Implementation specific error",
                False,
                "no evidence that retrying cannot help",
                _ANY_ACK,
            ),
            _row(
                0x84,
                "Unsupported Protocol Version",
                True,
                "the broker does not speak MQTT 5; it will not learn by retrying",
                (_CONNACK,),
            ),
            _row(
                0x85,
                "Client Identifier not valid",
                True,
                "the same client id will be refused again",
                (_CONNACK,),
            ),
            _row(
                0x86,
                "Bad User Name or Password",
                True,
                "the same credentials will be refused again",
                (_CONNACK,),
            ),
            _row(
                0x87,
                "Not authorized",
                True,
                "the same identity will be refused again",
                (_CONNACK, *_PUB_ACKS, _SUBACK, _UNSUBACK, _DISCONNECT),
            ),
            _row(0x88, "Server unavailable", False, "transient by definition", (_CONNACK,)),
            _row(0x89, "Server busy", False, "transient by definition", (_CONNACK, _DISCONNECT)),
            _row(0x8A, "Banned", True, "an administrator has to lift the ban", (_CONNACK,)),
            _row(
                0x8B,
                "Server shutting down",
                False,
                "the server (or its replacement) comes back",
                (_DISCONNECT,),
            ),
            _row(
                0x8C,
                "Bad authentication method",
                True,
                "the same authentication method will be refused again",
                (_CONNACK, _DISCONNECT),
            ),
            _row(0x8D, "Keep Alive timeout", False, "a network hiccup; reconnect", (_DISCONNECT,)),
            _row(
                0x8E,
                "Session taken over",
                True,
                "another client uses this client id; reconnecting would fight it for the session",
                (_DISCONNECT,),
            ),
            _row(
                0x8F,
                "Topic Filter invalid",
                False,
                "about one SUBSCRIBE, not about the connection",
                (_SUBACK, _UNSUBACK, _DISCONNECT),
            ),
            _row(
                0x90,
                "Topic Name invalid",
                True,
                "in CONNACK the will topic is refused and will be again; "
                + _ON_DISCONNECT_A_PUBLISH,
                (_CONNACK, *_PUB_ACKS, _DISCONNECT),
                fatal_on_disconnect=False,
            ),
            _row(
                0x91,
                "Packet Identifier in use",
                False,
                "about one packet",
                (*_PUB_ACKS, _SUBACK, _UNSUBACK),
            ),
            _row(
                0x92, "Packet Identifier not found", False, "about one packet", (_PUBREL, _PUBCOMP)
            ),
            _row(
                0x93,
                "Receive Maximum exceeded",
                False,
                "too many in-flight messages; a new connection starts from zero",
                (_DISCONNECT,),
            ),
            _row(
                0x94,
                "Topic Alias invalid",
                False,
                "a new connection resets topic aliases",
                (_DISCONNECT,),
            ),
            _row(
                0x95,
                "Packet too large",
                True,
                "in CONNACK the CONNECT (will, credentials) is too large and will be again; "
                + _ON_DISCONNECT_A_PUBLISH,
                (_CONNACK, _DISCONNECT),
                fatal_on_disconnect=False,
            ),
            _row(0x96, "Message rate too high", False, "slow down and reconnect", (_DISCONNECT,)),
            _row(
                0x97,
                "Quota exceeded",
                False,
                "quotas refill over time",
                (_CONNACK, *_PUB_ACKS, _SUBACK, _DISCONNECT),
            ),
            _row(
                0x98,
                "Administrative action",
                False,
                "an administrator disconnected the client, not banned it",
                (_DISCONNECT,),
            ),
            _row(
                0x99,
                "Payload format invalid",
                True,
                "in CONNACK the will payload is refused and will be again; "
                + _ON_DISCONNECT_A_PUBLISH,
                (_CONNACK, *_PUB_ACKS, _DISCONNECT),
                fatal_on_disconnect=False,
            ),
            _row(
                0x9A,
                "Retain not supported",
                True,
                "in CONNACK the will's retain flag is refused and will be again; "
                + _ON_DISCONNECT_A_PUBLISH,
                (_CONNACK, _DISCONNECT),
                fatal_on_disconnect=False,
            ),
            _row(
                0x9B,
                "QoS not supported",
                True,
                "in CONNACK the will's QoS is refused and will be again; "
                + _ON_DISCONNECT_A_PUBLISH,
                (_CONNACK, _DISCONNECT),
                fatal_on_disconnect=False,
            ),
            _row(
                0x9C,
                "Use another server",
                True,
                "with a Server Reference the next attempt goes there (not fatal); without one "
                "this server sends us away again and there is nowhere else to go",
                (_CONNACK, _DISCONNECT),
            ),
            _row(
                0x9D,
                "Server moved",
                True,
                "with a Server Reference the next attempt goes there (not fatal); without one "
                "this server sends us away again and there is nowhere else to go",
                (_CONNACK, _DISCONNECT),
            ),
            _row(
                0x9E,
                "Shared Subscriptions not supported",
                False,
                "about one SUBSCRIBE, not about the connection",
                (_SUBACK, _DISCONNECT),
            ),
            _row(
                0x9F,
                "Connection rate exceeded",
                False,
                "backing off is exactly the cure",
                (_CONNACK, _DISCONNECT),
            ),
            _row(
                0xA0,
                "Maximum connect time",
                False,
                "the broker limits session length; reconnect",
                (_DISCONNECT,),
            ),
            _row(
                0xA1,
                "Subscription Identifiers not supported",
                False,
                "about one SUBSCRIBE, not about the connection",
                (_SUBACK, _DISCONNECT),
            ),
            _row(
                0xA2,
                "Wildcard Subscriptions not supported",
                False,
                "about one SUBSCRIBE, not about the connection",
                (_SUBACK, _DISCONNECT),
            ),
        ]
    )
)
"""Every reason code MQTT 5 defines, by code (see :func:`is_fatal_reason_code` for the table)."""

V311_CONNACK_CODES: Mapping[int, tuple[int, str]] = MappingProxyType(
    {
        0x01: (0x84, "Connection Refused, unacceptable protocol version"),
        0x02: (0x85, "Connection Refused, identifier rejected"),
        0x03: (0x88, "Connection Refused, Server unavailable"),
        0x04: (0x86, "Connection Refused, bad user name or password"),
        0x05: (0x87, "Connection Refused, not authorized"),
    }
)
"""MQTT 3.1.1 CONNACK return code -> (its MQTT 5 equivalent, its 3.1.1 name).

A refused 3.1.1 connection is reported with the MQTT 5 code (as paho-mqtt and HiveMQ's client
map them), so one table decides what is fatal for both versions: 1-2 and 4-5 are, 3 is not.
Return codes 3.1.1 reserves (6-255) are 0x80 Unspecified error (see
:func:`v311_connack_reason_code`)."""

_DISCONNECT_NAMES: Mapping[int, str] = MappingProxyType({0x00: "Normal disconnection"})

_RETRIABLE_PUBLISH_CODES = frozenset({0x89, 0x97})

_PER_MESSAGE_DISCONNECT_CODES = frozenset({0x90, 0x95, 0x99, 0x9A, 0x9B})


def reason_name(code: int, packet: str | None = None) -> str:
    """The MQTT 5 name of ``code``, e.g. ``reason_name(0x86) == "Bad User Name or Password"``.

    ``packet="DISCONNECT"`` names 0x00 ``"Normal disconnection"`` instead of ``"Success"``.
    Codes the specification does not define give ``"Unknown reason code 0xNN"``.
    """
    if packet == _DISCONNECT and code in _DISCONNECT_NAMES:
        return _DISCONNECT_NAMES[code]
    info = REASON_CODES.get(code)
    if info is None:
        return f"Unknown reason code 0x{code:02X}"
    return info.name


def v311_connack_reason_code(return_code: int) -> tuple[int, str]:
    """The MQTT 5 reason code and a description of an MQTT 3.1.1 CONNACK ``return_code`` (see
    :data:`V311_CONNACK_CODES`): a reserved code is 0x80 Unspecified error."""
    known = V311_CONNACK_CODES.get(return_code)
    if known is not None:
        return known
    return 0x80, f"Connection Refused with a return code MQTT 3.1.1 reserves (0x{return_code:02X})"


def is_fatal_reason_code(code: int, packet: ReasonPacket | None = None) -> bool:
    """Whether reconnecting is pointless after ``code`` (the default ``ReconnectPolicy.is_fatal``).

    ``packet`` says where the code came from; ``None`` and ``"CONNACK"`` ask about a refused
    connection, ``"DISCONNECT"`` about a connection the server ended. They differ only where the
    table has a "DISCONNECT" note. Codes below 0x80 are not errors; codes the specification does
    not define are not fatal (retrying with backoff is the safe default).

    | Code | Name | Fatal | Why |
    |------|------|-------|-----|
    | 0x00 | Success | no | not an error (DISCONNECT: Normal disconnection) |
    | 0x01 | Granted QoS 1 | no | not an error |
    | 0x02 | Granted QoS 2 | no | not an error |
    | 0x04 | Disconnect with Will Message | no | the peer left on purpose; the server is still there |
    | 0x10 | No matching subscribers | no | not an error |
    | 0x11 | No subscription existed | no | not an error |
    | 0x18 | Continue authentication | no | not an error |
    | 0x19 | Re-authenticate | no | not an error |
    | 0x80 | Unspecified error | no | no evidence that retrying cannot help |
    | 0x81 | Malformed Packet | no | usually a corrupted byte on the way (proxy, network); a new connection is clean |
    | 0x82 | Protocol Error | no | usually a corrupted or reordered packet; a new connection starts clean |
    | 0x83 | Implementation specific error | no | no evidence that retrying cannot help |
    | 0x84 | Unsupported Protocol Version | **yes** | the broker does not speak MQTT 5; it will not learn by retrying |
    | 0x85 | Client Identifier not valid | **yes** | the same client id will be refused again |
    | 0x86 | Bad User Name or Password | **yes** | the same credentials will be refused again |
    | 0x87 | Not authorized | **yes** | the same identity will be refused again |
    | 0x88 | Server unavailable | no | transient by definition |
    | 0x89 | Server busy | no | transient by definition |
    | 0x8A | Banned | **yes** | an administrator has to lift the ban |
    | 0x8B | Server shutting down | no | the server (or its replacement) comes back |
    | 0x8C | Bad authentication method | **yes** | the same authentication method will be refused again |
    | 0x8D | Keep Alive timeout | no | a network hiccup; reconnect |
    | 0x8E | Session taken over | **yes** | another client uses this client id; reconnecting would fight it for the session |
    | 0x8F | Topic Filter invalid | no | about one SUBSCRIBE, not about the connection |
    | 0x90 | Topic Name invalid | **yes** (DISCONNECT: no) | in CONNACK the will topic is refused and will be again; as a DISCONNECT it was about one of our PUBLISHes: reconnect, and give that publish up when the refusal repeats |
    | 0x91 | Packet Identifier in use | no | about one packet |
    | 0x92 | Packet Identifier not found | no | about one packet |
    | 0x93 | Receive Maximum exceeded | no | too many in-flight messages; a new connection starts from zero |
    | 0x94 | Topic Alias invalid | no | a new connection resets topic aliases |
    | 0x95 | Packet too large | **yes** (DISCONNECT: no) | in CONNACK the CONNECT (will, credentials) is too large and will be again; as a DISCONNECT it was about one of our PUBLISHes: reconnect, and give that publish up when the refusal repeats |
    | 0x96 | Message rate too high | no | slow down and reconnect |
    | 0x97 | Quota exceeded | no | quotas refill over time |
    | 0x98 | Administrative action | no | an administrator disconnected the client, not banned it |
    | 0x99 | Payload format invalid | **yes** (DISCONNECT: no) | in CONNACK the will payload is refused and will be again; as a DISCONNECT it was about one of our PUBLISHes: reconnect, and give that publish up when the refusal repeats |
    | 0x9A | Retain not supported | **yes** (DISCONNECT: no) | in CONNACK the will's retain flag is refused and will be again; as a DISCONNECT it was about one of our PUBLISHes: reconnect, and give that publish up when the refusal repeats |
    | 0x9B | QoS not supported | **yes** (DISCONNECT: no) | in CONNACK the will's QoS is refused and will be again; as a DISCONNECT it was about one of our PUBLISHes: reconnect, and give that publish up when the refusal repeats |
    | 0x9C | Use another server | **yes** | with a Server Reference the next attempt goes there (not fatal); without one this server sends us away again and there is nowhere else to go |
    | 0x9D | Server moved | **yes** | with a Server Reference the next attempt goes there (not fatal); without one this server sends us away again and there is nowhere else to go |
    | 0x9E | Shared Subscriptions not supported | no | about one SUBSCRIBE, not about the connection |
    | 0x9F | Connection rate exceeded | no | backing off is exactly the cure |
    | 0xA0 | Maximum connect time | no | the broker limits session length; reconnect |
    | 0xA1 | Subscription Identifiers not supported | no | about one SUBSCRIBE, not about the connection |
    | 0xA2 | Wildcard Subscriptions not supported | no | about one SUBSCRIBE, not about the connection |
    """  # noqa: E501 -- a Markdown table cannot wrap
    info = REASON_CODES.get(code)
    if info is None:
        return False
    return info.is_fatal(packet)


def is_retriable_publish_code(code: int) -> bool:
    """Whether a publish refused with ``code`` (negative PUBACK/PUBREC) is worth re-sending.

    True only for transient refusals: 0x97 Quota exceeded and 0x89 Server busy. Every other
    refusal (not authorized, topic invalid, payload format invalid, ...) will be repeated, and
    codes below 0x80 are not refusals at all.
    """
    return code in _RETRIABLE_PUBLISH_CODES


def is_per_message_disconnect_code(code: int) -> bool:
    """Whether a DISCONNECT from the broker with ``code`` is about one PUBLISH this client sent
    (0x90 Topic Name invalid, 0x95 Packet too large, 0x99 Payload format invalid, 0x9A Retain not
    supported, 0x9B QoS not supported), so that re-sending the same PUBLISH draws it again.

    The connection reconnects after it, and gives the publish up with a ``PublishRefusedError``
    once the refusal repeats (see "Poison publishes" in the reliability guide).
    """
    return code in _PER_MESSAGE_DISCONNECT_CODES


def _render_table() -> str:
    """The Markdown table in :func:`is_fatal_reason_code`'s docstring, generated from the data."""
    lines = ["| Code | Name | Fatal | Why |", "|------|------|-------|-----|"]
    for info in REASON_CODES.values():
        fatal = "**yes**" if info.fatal else "no"
        if info.fatal_on_disconnect is not None and info.fatal_on_disconnect != info.fatal:
            fatal += " (DISCONNECT: " + ("yes" if info.fatal_on_disconnect else "no") + ")"
        lines.append(f"| 0x{info.code:02X} | {info.name} | {fatal} | {info.why} |")
    return "\n".join(lines)
