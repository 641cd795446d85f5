"""Errors the envoys deliver on their streams (or raise at the call site for bad values).

Every one derives from :class:`rxmqtt.MqttError`, so an application can catch the whole family;
the command errors derive from :class:`CommandError` so an invoker's caller can tell "the command
failed" from "the connection was closed" (:class:`rxmqtt.ConnectionClosedError`).
"""

from __future__ import annotations

from rxmqtt.errors import MqttError


class PayloadError(MqttError, ValueError):
    """A value could not be serialized, or a payload could not be deserialized.

    Raised at the call site when ``send(value)``/``invoke(request)`` gets a value its serializer
    cannot encode; delivered as a value (``TelemetryReceiver.decode_errors``) or as an error (a
    command response) when an incoming payload cannot be decoded. ``topic`` is the MQTT topic the
    payload travelled on (``None`` for outgoing values that never left).
    """

    def __init__(self, message: str, *, topic: str | None = None) -> None:
        super().__init__(message)
        self.topic = topic


class EnvoyDisposedError(MqttError):
    """The envoy was disposed while the operation was still pending (e.g. an invocation)."""


class CommandError(MqttError):
    """Base class of the errors a :class:`CommandInvoker` delivers for one invocation."""

    def __init__(self, message: str, *, request_topic: str | None = None) -> None:
        super().__init__(message)
        self.request_topic = request_topic


class CommandTimeoutError(CommandError, TimeoutError):
    """No response arrived within the invocation's ``timeout``.

    The request carried a Message Expiry Interval of ``ceil(timeout)`` seconds, so a broker, the
    offline queue or the executor discards it once it can no longer be answered in time; a
    response arriving after the timeout is ignored.
    """

    def __init__(
        self, timeout: float, *, request_topic: str | None = None, correlation_data: bytes = b""
    ) -> None:
        where = f" to {request_topic!r}" if request_topic else ""
        super().__init__(
            f"no response to the command{where} within {timeout:g}s", request_topic=request_topic
        )
        self.timeout = timeout
        self.correlation_data = correlation_data


class CommandExecutionError(CommandError):
    """The executor answered with an error status (its ``status`` user property >= 300).

    On the executor side a handler may raise this to choose the status it responds with, e.g.
    ``raise CommandExecutionError(404, "no such valve")``; any other exception becomes 500.
    """

    def __init__(
        self, status: int, status_message: str, *, request_topic: str | None = None
    ) -> None:
        if isinstance(status, bool) or not isinstance(status, int):
            raise TypeError(f"status: must be an int, got {type(status).__name__}")
        if not 100 <= status <= 999 or 200 <= status <= 299:
            raise ValueError(f"status: must be a non-2xx code in 100..999, got {status}")
        where = f"{request_topic!r} " if request_topic else ""
        super().__init__(
            f"command {where}failed with status {status}: {status_message}",
            request_topic=request_topic,
        )
        self.status = int(status)
        self.status_message = status_message
