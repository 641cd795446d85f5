"""CloudEvents 1.0 in binary mode: the event's attributes travel as MQTT user properties.

A :class:`TelemetrySender` attaches one when asked (``send(value, cloud_event=...)``), filling
defaults the way AIO does (``type`` ``ms.aio.telemetry``, ``specversion`` ``1.0``, a fresh UUID
``id``, the send time, the topic as ``subject``, the serializer's content type); a
:class:`TelemetryReceiver` reads one back when the properties form a valid event, and reports
``None`` otherwise (the telemetry itself is still delivered).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from ._errors import configuration_error

SPEC_VERSION = "1.0"
DEFAULT_TYPE = "ms.aio.telemetry"

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s]*$")
_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+\-]+/[A-Za-z0-9!#$&^_.+\-]+(\s*;.*)?$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+\-]\d{2}:\d{2})$")

ATTRIBUTES = ("specversion", "type", "source", "id", "time", "subject", "dataschema")
"""The user property names the attributes travel in (``datacontenttype`` is the MQTT Content
Type property itself)."""


def is_absolute_uri(text: str) -> bool:
    """An RFC 3986 URI with a scheme."""
    return bool(_SCHEME.match(text))


def is_uri_reference(text: str) -> bool:
    """An absolute URI or a relative reference (whose first segment holds no ``:``)."""
    if not text or any(c.isspace() for c in text):
        return False
    return is_absolute_uri(text) or ":" not in text.split("/", 1)[0]


def is_media_type(text: str | None) -> bool:
    """An RFC 2045 ``type/subtype`` (parameters allowed)."""
    return text is not None and bool(_MEDIA_TYPE.match(text))


def is_rfc3339(text: str) -> bool:
    """An RFC 3339 date-time."""
    if not _RFC3339.match(text):
        return False
    try:
        datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class CloudEvent:
    """The CloudEvents attributes of one message; only ``source`` is required when sending."""

    source: str
    type: str = DEFAULT_TYPE
    spec_version: str = SPEC_VERSION
    id: str | None = None
    time: str | None = None
    subject: str | None = None
    data_schema: str | None = None
    data_content_type: str | None = None

    def to_user_properties(
        self, *, topic: str, content_type: str | None
    ) -> tuple[tuple[str, str], ...]:
        """The attributes as user properties, defaults filled in; an ``invalid configuration``
        error (property ``cloudevent``) when one is not valid."""

        def bad(why: str, value: object) -> Exception:
            return configuration_error("cloudevent", value, why)

        if not is_uri_reference(self.source):
            raise bad("source must be a URI reference", self.source)
        if not self.type:
            raise bad("type must not be empty", self.type)
        if not self.spec_version:
            raise bad("spec_version must not be empty", self.spec_version)
        if self.id is not None and not self.id:
            raise bad("id must not be empty", self.id)
        if self.time is not None and not is_rfc3339(self.time):
            raise bad("time must be an RFC 3339 date-time", self.time)
        if self.subject is not None and not self.subject:
            raise bad("subject must not be empty", self.subject)
        if self.data_schema is not None and not is_absolute_uri(self.data_schema):
            raise bad("data_schema must be an absolute URI", self.data_schema)
        if not is_media_type(content_type):
            raise bad(
                "the serializer's content type must be an RFC 2045 type/subtype", content_type
            )
        time = self.time or datetime.now(UTC).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z"
        )
        pairs = [
            ("specversion", self.spec_version),
            ("type", self.type),
            ("source", self.source),
            ("id", self.id or str(uuid.uuid4())),
            ("time", time),
            ("subject", self.subject or topic),
        ]
        if self.data_schema is not None:
            pairs.append(("dataschema", self.data_schema))
        return tuple(pairs)

    @staticmethod
    def from_user_properties(
        user: Mapping[str, str], content_type: str | None
    ) -> CloudEvent | None:
        """The event the properties carry, or ``None`` when they do not form a valid one."""
        source, kind = user.get("source"), user.get("type")
        version, event_id = user.get("specversion"), user.get("id")
        if not source or not kind or not event_id or version != SPEC_VERSION:
            return None
        if not is_uri_reference(source):
            return None
        time, subject, schema = user.get("time"), user.get("subject"), user.get("dataschema")
        if time is not None and not is_rfc3339(time):
            return None
        if subject is not None and not subject:
            return None
        if schema is not None and not is_absolute_uri(schema):
            return None
        if content_type is not None and not is_media_type(content_type):
            return None
        return CloudEvent(
            source=source,
            type=kind,
            spec_version=version,
            id=event_id,
            time=time,
            subject=subject,
            data_schema=schema,
            data_content_type=content_type,
        )
