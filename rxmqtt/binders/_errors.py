"""The AIO error model as Python exceptions (``doc/reference/error-model.md`` in AIO).

Every error an envoy raises or delivers is an :class:`AioError`: it carries the AIO
:class:`ErrorKind`, ``is_shallow`` (detected before anything went on the wire: a bad argument
or setting), ``is_remote`` (reported by the peer in a response, not detected here) and the
supplemental details AIO defines. All derive from :class:`rxmqtt.MqttError`, so an application
can catch the whole family. Specific classes keep the Python idiom: a bad setting is also a
``ValueError``, a timeout also a ``TimeoutError``.
"""

from __future__ import annotations

import enum

from rxmqtt.errors import MqttError


class ErrorKind(enum.Enum):
    """The AIO error kinds: what went wrong, in the words of the .NET, Go and Rust envoys."""

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
    """An error of the AIO error model, with its kind and supplemental details.

    ``property_name``/``property_value`` name an offending setting or property;
    ``header_name``/``header_value`` an offending MQTT header or user property;
    ``timeout_name``/``timeout_value`` the timeout that ran out; ``protocol_version`` and
    ``supported_major_versions`` a version mismatch; ``status`` the response status, if any;
    ``command_name`` the command concerned.
    """

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
        timeout_value: object = None,
        protocol_version: str | None = None,
        supported_major_versions: tuple[int, ...] = (),
        status: int | None = None,
        request_topic: str | None = None,
        command_name: str | None = None,
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
        self.request_topic = request_topic
        self.command_name = command_name


class InvalidConfigurationError(AioError, ValueError):
    """An envoy's setting or a call's argument is not valid (``invalid configuration``, shallow);
    raised at the call site."""


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


class PayloadError(AioError, ValueError):
    """A value could not be serialized (shallow, raised at the call site), or a payload could
    not be deserialized (delivered on a stream). ``topic`` is the MQTT topic the payload
    travelled on (``None`` for outgoing values that never left)."""

    def __init__(self, message: str, *, topic: str | None = None) -> None:
        super().__init__(ErrorKind.INVALID_PAYLOAD, message, is_shallow=topic is None)
        self.topic = topic


class EnvoyDisposedError(AioError):
    """The envoy was disposed while the operation was still pending (``cancellation``)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.CANCELLATION, message, is_shallow=False)


class CommandError(AioError):
    """Base class of the errors a :class:`CommandInvoker` delivers that are about the command
    itself (as opposed to the connection)."""


class CommandTimeoutError(CommandError, TimeoutError):
    """No response arrived within the invocation's ``timeout`` (``timeout``, local).

    The request carried a Message Expiry Interval of ``ceil(timeout)`` seconds, so a broker, the
    offline queue or the executor discards it once it can no longer be answered in time; a
    response arriving after the timeout is ignored.
    """

    def __init__(
        self, timeout: float, *, request_topic: str | None = None, correlation_data: bytes = b""
    ) -> None:
        where = f" to {request_topic!r}" if request_topic else ""
        super().__init__(
            ErrorKind.TIMEOUT,
            f"no response to the command{where} within {timeout:g}s",
            is_shallow=False,
            timeout_name="timeout",
            timeout_value=timeout,
            request_topic=request_topic,
        )
        self.timeout = timeout
        self.correlation_data = correlation_data


class CommandExecutionError(CommandError):
    """The executor answered with an error status; or, raised by a handler, the status and
    message to answer with (``raise CommandExecutionError(404, "no such valve")``; any other
    exception answers 500). Its message is the response's ``__stMsg``.

    On the invoker side ``kind`` follows AIO's mapping of the status (500 with ``__apErr``:
    ``execution error``; 400: ``invalid header``/``missing header``/``invalid payload``; 408:
    ``timeout``; 415: ``invalid header``; 503: ``invalid state``; 505: ``unsupported version``;
    anything else ``unknown error``) and ``is_application_error`` is the ``__apErr`` flag.
    """

    def __init__(
        self,
        status: int,
        status_message: str,
        *,
        kind: ErrorKind = ErrorKind.EXECUTION_ERROR,
        is_application_error: bool = True,
        request_topic: str | None = None,
        property_name: str | None = None,
        property_value: object = None,
        header_name: str | None = None,
        header_value: str | None = None,
        timeout_name: str | None = None,
        timeout_value: object = None,
        protocol_version: str | None = None,
        supported_major_versions: tuple[int, ...] = (),
    ) -> None:
        if isinstance(status, bool) or not isinstance(status, int):
            raise TypeError(f"status: must be an int, got {type(status).__name__}")
        if not 100 <= status <= 999 or 200 <= status <= 299:
            raise ValueError(f"status: must be a non-2xx code in 100..999, got {status}")
        super().__init__(
            kind,
            status_message or f"the command failed with status {status}",
            is_shallow=False,
            is_remote=True,
            property_name=property_name,
            property_value=property_value,
            header_name=header_name,
            header_value=header_value,
            timeout_name=timeout_name,
            timeout_value=timeout_value,
            protocol_version=protocol_version,
            supported_major_versions=supported_major_versions,
            status=int(status),
            request_topic=request_topic,
        )
        self.status: int = int(status)
        self.status_message = status_message
        self.is_application_error = is_application_error


def error_kind(error: BaseException) -> ErrorKind:
    """The AIO error kind of any error an envoy delivers: an :class:`AioError`'s own; a timeout
    ``timeout``; the connection's own errors (publish, subscribe, closed) ``mqtt error``."""
    if isinstance(error, AioError):
        return error.kind
    if isinstance(error, TimeoutError):
        return ErrorKind.TIMEOUT
    if isinstance(error, MqttError):
        return ErrorKind.MQTT_ERROR
    return ErrorKind.UNKNOWN_ERROR


def mqtt_error(error: Exception, what: str) -> AioError:
    """``error`` from the connection (a failed PUBLISH/SUBSCRIBE) as an ``mqtt error``, the
    original as its ``__cause__``; AIO errors pass through."""
    if isinstance(error, AioError):
        return error
    wrapped = AioError(ErrorKind.MQTT_ERROR, f"{what}: {error}", is_shallow=False)
    wrapped.__cause__ = error
    return wrapped
