"""Exceptions rxmqtt raises at call sites or delivers as errors on streams.

Bad arguments raise ``ValueError``/``TypeError`` subclasses immediately; connection trouble never
raises into the application's loop but arrives as one of these on a publish observable or as a
value on ``lifecycle``.
"""

from __future__ import annotations


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
