"""What the broker's CONNACK told us about itself: a plain value every layer may read (it lives
outside the engine so that reading it does not import paho)."""

from __future__ import annotations

from dataclasses import dataclass

from .message import Message

_PUBLISH_HEADER_ALLOWANCE = 16
"""Bytes a PUBLISH adds around topic, payload and properties (fixed header, lengths, id)."""


@dataclass(frozen=True, slots=True)
class BrokerLimits:
    """What the broker's CONNACK told us about itself (MQTT 5 CONNACK properties)."""

    receive_maximum: int = 65535
    maximum_packet_size: int | None = None
    maximum_qos: int = 2
    retain_available: bool = True
    topic_alias_maximum: int = 0
    wildcard_subscription_available: bool = True
    shared_subscription_available: bool = True
    server_keep_alive: int | None = None
    assigned_client_id: str | None = None
    session_expiry_interval: int | None = None
    """The session expiry the broker granted, when it differs from what we asked for."""
    subscription_identifiers_available: bool = True

    def refusal(self, message: Message) -> tuple[str, int, str] | None:
        """Why this broker would refuse ``message`` (its CONNACK said so), or None: the
        ``publish()`` argument at fault, the reason code the broker would disconnect with, and
        the broker limit in words. Sending it anyway only gets the connection closed."""
        if message.retain and not self.retain_available:
            return (
                "retain",
                0x9A,
                "the broker does not support retained messages (its CONNACK said Retain "
                "Available 0)",
            )
        if message.qos > self.maximum_qos:
            return (
                "qos",
                0x9B,
                f"QoS {message.qos} is above the broker's Maximum QoS {self.maximum_qos} (said "
                "its CONNACK)",
            )
        if self.maximum_packet_size is not None:
            approx_packet = message.size + _PUBLISH_HEADER_ALLOWANCE
            if approx_packet > self.maximum_packet_size:
                return (
                    "payload",
                    0x95,
                    f"the PUBLISH would be about {approx_packet} bytes, over the broker's "
                    f"maximum packet size of {self.maximum_packet_size}",
                )
        return None


V311_IN_FLIGHT = 20
"""QoS 1/2 publishes an MQTT 3.1.1 connection keeps unacknowledged at most: 3.1.1 has no Receive
Maximum, and 20 is paho-mqtt's default and Mosquitto's ``max_inflight_messages`` (Mosquitto
2.0 acknowledges QoS 2 publishes a 3.1.1 client sends beyond it, but never forwards them)."""

V311_LIMITS = BrokerLimits(receive_maximum=V311_IN_FLIGHT, subscription_identifiers_available=False)
"""What an MQTT 3.1.1 CONNACK tells: nothing beyond acceptance, so the protocol's own limits
(no Subscription Identifiers, no Topic Aliases, no flow control: ``V311_IN_FLIGHT``)."""
