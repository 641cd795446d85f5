"""MQTT 3.1.1 as a choice: the version numbers, and what only MQTT 5 can say.

A 3.1.1 CONNECT has no properties, so every setting that would travel as one (or as the Will's)
is refused when ``protocol_version=4`` is chosen, with an error naming the setting. The session
is a single flag there (Clean Session): see :func:`v311_session_expiry` for how ``clean_start``
and ``session_expiry`` map onto it.
"""

from __future__ import annotations

from rxmqtt.message import NO_PROPERTIES, PublishProperties

from ._will import Will

__all__ = [
    "MQTT5_NEEDED",
    "MQTT_3_1_1",
    "MQTT_5",
    "NEVER_EXPIRES",
    "check_protocol_version",
    "mqtt5_only_properties",
    "v311_refusal",
    "v311_session_expiry",
]

MQTT_5 = 5
"""``protocol_version`` of MQTT 5.0 (the default)."""

MQTT_3_1_1 = 4
"""``protocol_version`` of MQTT 3.1.1 (the protocol level its CONNECT carries)."""

NEVER_EXPIRES = 0xFFFFFFFF
"""The MQTT 5 Session Expiry Interval that means "never": what a 3.1.1 Clean Session 0 asks."""

MQTT5_NEEDED = "needs MQTT 5 (protocol_version=5); MQTT 3.1.1 has no"
"""How each refusal of an MQTT 5 feature under 3.1.1 begins (after the argument's name)."""


def check_protocol_version(value: object, argument: str = "protocol_version") -> int:
    """``value`` if it is 5 (MQTT 5) or 4 (MQTT 3.1.1), else an error naming ``argument``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument}: must be an int (5 or 4), got {type(value).__name__}")
    if value not in (MQTT_5, MQTT_3_1_1):
        raise ValueError(f"{argument}: must be 5 (MQTT 5) or 4 (MQTT 3.1.1), got {value}")
    return value


def v311_session_expiry(clean_start: bool) -> int:
    """The session expiry a 3.1.1 connection really has: Clean Session 1 (``clean_start``) ends
    the session with each connection (0); Clean Session 0 asks the broker to keep it with no
    expiry (``NEVER_EXPIRES``; the broker may still drop it by its own rule)."""
    return 0 if clean_start else NEVER_EXPIRES


def mqtt5_only_properties(properties: PublishProperties, argument: str) -> str | None:
    """Why ``properties`` cannot travel in a 3.1.1 PUBLISH (an error text naming the field), or
    None when there are none: MQTT 3.1.1 has no PUBLISH properties at all."""
    if properties is NO_PROPERTIES or properties == NO_PROPERTIES:
        return None
    for name in (
        "message_expiry_interval",
        "content_type",
        "response_topic",
        "correlation_data",
        "payload_format_indicator",
    ):
        if getattr(properties, name) is not None:
            return f"{argument}.{name}: {MQTT5_NEEDED} PUBLISH properties"
    if properties.user_properties:
        return f"{argument}.user_properties: {MQTT5_NEEDED} user properties"
    return f"{argument}.subscription_identifiers: {MQTT5_NEEDED} subscription identifiers"


def v311_refusal(
    *,
    clean_start: bool,
    session_expiry: int,
    receive_maximum: int | None,
    maximum_packet_size: int | None,
    auth_method: str | None,
    will: Will | None,
) -> str | None:
    """Why these settings cannot be spoken in MQTT 3.1.1 (an error text naming the setting),
    or None when they can."""
    if session_expiry != v311_session_expiry(clean_start):
        return (
            f"session_expiry: {MQTT5_NEEDED} session expiry; its session is set by clean_start "
            "alone (True: it ends with each connection; False: the broker keeps it). Leave "
            f"session_expiry unset, or give {v311_session_expiry(clean_start)} to match "
            f"clean_start={clean_start}"
        )
    if receive_maximum is not None:
        return f"receive_maximum: {MQTT5_NEEDED} Receive Maximum"
    if maximum_packet_size is not None:
        return f"maximum_packet_size: {MQTT5_NEEDED} Maximum Packet Size"
    if auth_method is not None:
        return f"auth_method: {MQTT5_NEEDED} enhanced authentication"
    if will is not None:
        if will.delay_interval:
            return f"will.delay_interval: {MQTT5_NEEDED} Will Delay Interval"
        return mqtt5_only_properties(will.properties, "will.properties")
    return None
