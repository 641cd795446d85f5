"""Errors the envoys deliver on their streams (or raise at the call site for bad values).

Every one derives from :class:`rxmqtt.MqttError`, so an application can catch the whole family;
the command errors derive from :class:`CommandError` so an invoker's caller can tell "the command
failed" from "the connection was closed" (:class:`rxmqtt.ConnectionClosedError`).
"""

from __future__ import annotations

import enum

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


class ErrorKind(enum.Enum):
    """The AIO error kinds (``doc/reference/error-model.md``): what went wrong, in the words the
    .NET, Go and Rust envoys use, so a Python caller can branch on the same cases."""

    MISSING_HEADER = "missing header"
    INVALID_HEADER = "invalid header"
    INVALID_PAYLOAD = "invalid payload"
    TIMEOUT = "timeout"
    CANCELLATION = "cancellation"
    INVALID_CONFIGURATION = "invalid configuration"
    INVALID_STATE = "invalid state"
    INTERNAL_LOGIC_ERROR = "internal logic error"
    UNKNOWN_ERROR = "unknown error"
    EXECUTION_ERROR = "execution error"
    MQTT_ERROR = "mqtt error"
    UNSUPPORTED_VERSION = "unsupported version"


class AioError(MqttError):
    """An error of the AIO error model: its :class:`ErrorKind`, whether it was detected by this
    process (``is_remote`` False) or reported by the peer, whether it arose in this envoy
    (``is_shallow``: bad arguments or configuration, nothing went on the wire), and the
    supplemental details AIO carries (``property_name``/``property_value``, header names, ...)."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        is_shallow: bool,
        is_remote: bool = False,
        property_name: str | None = None,
        property_value: object = None,
        header_name: str | None = None,
        header_value: str | None = None,
        timeout_name: str | None = None,
        timeout_value: float | None = None,
        protocol_version: str | None = None,
        supported_major_versions: tuple[int, ...] = (),
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.is_shallow = is_shallow
        self.is_remote = is_remote
        self.property_name = property_name
        self.property_value = property_value
        self.header_name = header_name
        self.header_value = header_value
        self.timeout_name = timeout_name
        self.timeout_value = timeout_value
        self.protocol_version = protocol_version
        self.supported_major_versions = supported_major_versions
        self.status = status


class InvalidConfigurationError(AioError, ValueError):
    """An envoy's setting or a call's argument is not valid (kind ``invalid configuration``);
    also a ``ValueError``, raised at the call site."""


def configuration_error(
    name: str, value: object, why: str, *, argument: str | None = None
) -> InvalidConfigurationError:
    """A shallow ``invalid configuration`` error naming the offending setting (AIO's name in
    ``property_name``; the message names the Python ``argument`` when it differs)."""
    return InvalidConfigurationError(
        ErrorKind.INVALID_CONFIGURATION,
        f"{argument or name}: {why}, got {value!r}",
        is_shallow=True,
        property_name=name,
        property_value=value,
    )


def error_kind(error: BaseException) -> ErrorKind:
    """The AIO error kind of any error an envoy delivers: an :class:`AioError`'s own kind;
    :class:`PayloadError` is ``invalid payload``; a timeout ``timeout``; a disposed envoy
    ``cancellation``; the connection's own errors (publish, subscribe, closed) ``mqtt error``."""
    if isinstance(error, AioError):
        return error.kind
    if isinstance(error, PayloadError):
        return ErrorKind.INVALID_PAYLOAD
    if isinstance(error, TimeoutError):
        return ErrorKind.TIMEOUT
    if isinstance(error, EnvoyDisposedError):
        return ErrorKind.CANCELLATION
    if isinstance(error, CommandExecutionError):
        return ErrorKind.EXECUTION_ERROR
    if isinstance(error, MqttError):
        return ErrorKind.MQTT_ERROR
    return ErrorKind.UNKNOWN_ERROR


def mqtt_error(error: Exception, what: str) -> AioError:
    """``error`` from the connection (a failed PUBLISH/SUBSCRIBE) as an ``mqtt error``."""
    if isinstance(error, AioError):
        return error
    wrapped = AioError(ErrorKind.MQTT_ERROR, f"{what}: {error}", is_shallow=False)
    wrapped.__cause__ = error
    return wrapped
