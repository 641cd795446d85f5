"""What an AIO executor checks on a request before running the handler, in AIO's order.

Each failed check is answered with a status and the offending header named in ``__propName``/
``__propVal`` (:class:`Rejection`), so the invoker can map it onto the AIO error model. Pure: no
connection, no clock beyond the hybrid logical clock it is given.
"""

from __future__ import annotations

from dataclasses import dataclass

from rxmqtt.message import Message

from ._errors import AioError
from ._hlc import HybridLogicalClock, Timestamp
from ._protocol import (
    PROPERTY_NAME_PROPERTY,
    PROPERTY_VALUE_PROPERTY,
    PROTOCOL_VERSION_PROPERTY,
    REQUEST_PROTOCOL_VERSION_PROPERTY,
    SUPPORTED_MAJOR_VERSIONS,
    SUPPORTED_MAJOR_VERSIONS_PROPERTY,
    TIMESTAMP_PROPERTY,
    Status,
    parse_version,
)
from ._serializers import content_acceptable

CORRELATION_DATA_HEADER = "Correlation Data"
MESSAGE_EXPIRY_HEADER = "Message Expiry"
CONTENT_TYPE_HEADER = "Content Type"


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a request is answered with an error status instead of running the handler."""

    status: Status
    detail: str
    properties: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def header(status: Status, detail: str, name: str, value: str | None = None) -> Rejection:
        """A rejection naming the offending header (and its value, when it has one)."""
        props = [(PROPERTY_NAME_PROPERTY, name)]
        if value is not None:
            props.append((PROPERTY_VALUE_PROPERTY, value))
        return Rejection(status, detail, tuple(props))


def check_request(
    message: Message, deserializer: object, clock: HybridLogicalClock
) -> Rejection | None:
    """The first AIO check ``message`` fails (expiry, correlation data, protocol version,
    timestamp -- merged into ``clock`` when valid --, content type), or ``None``."""
    properties = message.properties
    user = dict(properties.user_properties)
    if properties.message_expiry_interval is None:
        return Rejection.header(
            Status.BAD_REQUEST, "the request has no message expiry", MESSAGE_EXPIRY_HEADER
        )
    correlation = properties.correlation_data
    if correlation is None:
        return Rejection.header(
            Status.BAD_REQUEST, "the request has no correlation data", CORRELATION_DATA_HEADER
        )
    if len(correlation) != 16:
        return Rejection.header(
            Status.BAD_REQUEST,
            "the request's correlation data is not a 16-byte GUID",
            CORRELATION_DATA_HEADER,
            correlation.hex(),
        )
    version_text = user.get(PROTOCOL_VERSION_PROPERTY)
    version = parse_version(version_text)
    if version is None or version[0] not in SUPPORTED_MAJOR_VERSIONS:
        return Rejection(
            Status.VERSION_NOT_SUPPORTED,
            f"protocol version {version_text!r} is not supported",
            (
                (SUPPORTED_MAJOR_VERSIONS_PROPERTY, " ".join(map(str, SUPPORTED_MAJOR_VERSIONS))),
                (REQUEST_PROTOCOL_VERSION_PROPERTY, str(version_text)),
            ),
        )
    stamp = user.get(TIMESTAMP_PROPERTY)
    if stamp is not None:
        try:
            clock.update(Timestamp.decode(stamp))
        except AioError as error:
            status = Status.BAD_REQUEST if error.header_name else Status.SERVICE_UNAVAILABLE
            return Rejection.header(status, str(error), TIMESTAMP_PROPERTY, stamp)
    content_type = properties.content_type
    if not content_acceptable(deserializer, content_type, properties.payload_format_indicator):
        return Rejection.header(
            Status.UNSUPPORTED_MEDIA_TYPE,
            f"content type {content_type!r} is not accepted",
            CONTENT_TYPE_HEADER,
            content_type or "",
        )
    return None
