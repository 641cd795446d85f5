"""Exceptions rxmqtt raises at call sites or delivers as errors on streams.

Bad arguments raise ``ValueError``/``TypeError`` subclasses immediately; connection trouble never
raises into the application's loop but arrives as one of these on a publish observable or as a
value on ``lifecycle``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lifecycle import Disconnect


class MqttError(Exception):
    """Base class of every error rxmqtt delivers on a stream."""


class ConnectionClosedError(MqttError):
    """The connection was closed by the application before the operation could finish."""


class NotStartedError(MqttError):
    """The operation needs a started connection (``start()`` or ``async with``)."""


class PublishError(MqttError):
    """The broker refused a publish (negative PUBACK/PUBREC), with its MQTT 5 reason code."""

    def __init__(self, reason_code: int, reason: str, topic: str) -> None:
        super().__init__(f"broker rejected publish to {topic!r}: 0x{reason_code:02X} {reason}")
        self.reason_code = reason_code
        self.reason = reason
        self.topic = topic


class MessageMayBeLostError(PublishError):
    """A QoS 2 publish whose exchange could not complete: the broker answered PUBCOMP with a
    failure code, or it lost the session while the PUBREL was still owed. The broker took the
    message once (PUBREC) but never confirmed it, so it may or may not have been delivered."""

    def __init__(self, reason_code: int, reason: str, topic: str) -> None:
        super().__init__(reason_code, reason, topic)
        self.args = (
            f"the QoS 2 publish to {topic!r} did not complete (0x{reason_code:02X}): {reason}; "
            "the message may be lost",
        )


class PublishRefusedError(PublishError):
    """The broker's limits forbid this publish: it said so in its CONNACK (checked here, the
    message was never sent), or it closed the connection over the message again and again
    (a DISCONNECT with a reason code about one PUBLISH, such as 0x99 Payload format invalid).
    Sending it once more would only repeat the refusal, so it is given up and reported on
    ``dropped``."""

    def __init__(self, reason_code: int, reason: str, topic: str) -> None:
        super().__init__(reason_code, reason, topic)
        self.args = (f"publish to {topic!r} refused: 0x{reason_code:02X} {reason}",)


class SubscribeError(MqttError):
    """The broker refused a subscription (SUBACK reason code >= 0x80)."""

    def __init__(self, reason_code: int, reason: str, topic_filter: str) -> None:
        super().__init__(
            f"broker refused subscription {topic_filter!r}: 0x{reason_code:02X} {reason}"
        )
        self.reason_code = reason_code
        self.reason = reason
        self.topic_filter = topic_filter


class RetriesExhausted(MqttError):
    """A retry operator gave up after ``attempts`` retries; ``last_error`` is the final failure."""

    def __init__(self, attempts: int, last_error: BaseException) -> None:
        super().__init__(f"gave up after {attempts} retries: {last_error}")
        self.attempts = attempts
        self.last_error = last_error


class MessageDroppedError(MqttError):
    """A policy discarded the message (the same event appears on ``Connection.dropped``)."""

    def __init__(self, reason: str, topic: str) -> None:
        super().__init__(f"publish to {topic!r} dropped: {reason}")
        self.reason = reason
        self.topic = topic


class NotConnectedError(MqttError):
    """Internal: an operation that needs the wire was attempted while no connection is up
    (the caller queues instead; applications never see it)."""


class AuthenticationError(MqttError):
    """An MQTT 5 enhanced-authentication exchange could not go on: an authenticator raises it
    to give up (the client then ends the exchange), and it is the base of the errors below."""


class ReauthenticationError(AuthenticationError):
    """A re-authentication (``Connection.reauthenticate()``) did not succeed: the server ended
    the connection (``disconnect`` says how; the reconnect policy decides what follows), the
    client gave up on it, or there was no connection to re-authenticate."""

    def __init__(self, reason: str, disconnect: Disconnect | None = None) -> None:
        super().__init__(f"re-authentication failed: {reason}")
        self.reason = reason
        self.disconnect = disconnect
