"""How a command response's status travels: AIO's ``__stat`` codes and their error kinds.

The executor turns an outcome into ``__stat``/``__stMsg``/``__apErr``/``__propName``/
``__propVal`` (and ``__supProtMajVer``/``__requestProtVer`` on a 505); the invoker turns them
back into a :class:`CommandExecutionError` of the matching :class:`ErrorKind`. One module, so
the two directions cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._errors import CommandExecutionError, ErrorKind
from ._protocol import (
    APPLICATION_ERROR_PROPERTY,
    PROPERTY_NAME_PROPERTY,
    PROPERTY_VALUE_PROPERTY,
    REQUEST_PROTOCOL_VERSION_PROPERTY,
    STATUS_MESSAGE_PROPERTY,
    SUPPORTED_MAJOR_VERSIONS_PROPERTY,
    Status,
)


def remote_error(
    status: int, user: Mapping[str, str], *, request_topic: str | None
) -> CommandExecutionError:
    """The error an error response (non-2xx ``status``) reports, per AIO's mapping."""
    message = user.get(STATUS_MESSAGE_PROPERTY, "")
    application = user.get(APPLICATION_ERROR_PROPERTY, "").lower() == "true"
    name = user.get(PROPERTY_NAME_PROPERTY)
    value = user.get(PROPERTY_VALUE_PROPERTY)
    details: dict[str, object] = {}
    if status == Status.BAD_REQUEST:
        if name is not None and value is not None:
            kind, details = ErrorKind.INVALID_HEADER, {"header_name": name, "header_value": value}
        elif name is not None:
            kind, details = ErrorKind.MISSING_HEADER, {"header_name": name}
        else:
            kind = ErrorKind.INVALID_PAYLOAD
    elif status == Status.REQUEST_TIMEOUT:
        kind, details = ErrorKind.TIMEOUT, {"timeout_name": name, "timeout_value": value}
    elif status == Status.UNSUPPORTED_MEDIA_TYPE:
        kind, details = ErrorKind.INVALID_HEADER, {"header_name": name, "header_value": value}
    elif status == Status.INTERNAL_ERROR and application:
        kind = ErrorKind.EXECUTION_ERROR
        details = {"property_name": name, "property_value": value}
    elif status == Status.INTERNAL_ERROR and name is not None:
        kind = ErrorKind.INTERNAL_LOGIC_ERROR
        details = {"property_name": name, "property_value": value}
    elif status == Status.SERVICE_UNAVAILABLE:
        kind = ErrorKind.INVALID_STATE
        details = {"property_name": name, "property_value": value}
    elif status == Status.VERSION_NOT_SUPPORTED:
        supported = user.get(SUPPORTED_MAJOR_VERSIONS_PROPERTY, "")
        kind = ErrorKind.UNSUPPORTED_VERSION
        details = {
            "protocol_version": user.get(REQUEST_PROTOCOL_VERSION_PROPERTY),
            "supported_major_versions": tuple(int(v) for v in supported.split() if v.isdigit()),
        }
    else:
        kind = ErrorKind.UNKNOWN_ERROR
        details = {"property_name": name, "property_value": value}
    return CommandExecutionError(
        status,
        message,
        kind=kind,
        is_application_error=application,
        request_topic=request_topic,
        **details,  # type: ignore[arg-type]
    )
