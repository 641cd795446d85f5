"""Between paho's types and ours: properties, CONNACK limits, reason names."""

from __future__ import annotations

from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ..broker_limits import BrokerLimits
from ..message import NO_PROPERTIES, PublishProperties
from ..settings import ConnectionSettings

_TABLES = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]


class _SharedTables(Properties):
    """paho's ``Properties``, reading its type, name and property tables (27 entries each,
    read-only) from one shared copy instead of building its own: paho keeps a connection's
    CONNECT properties for the connection's life, about 5 KiB each, and building the tables
    costs tens of microseconds per packet that has properties."""

    types = _TABLES.types
    names = _TABLES.names
    properties = _TABLES.properties

    def __init__(self, packetType: int) -> None:  # noqa: N803 - paho's parameter name
        self.packetType = packetType


def _properties(packet_type: int) -> Properties:
    return _SharedTables(packet_type)


_SCALAR_PROPERTIES = (
    ("message_expiry_interval", "MessageExpiryInterval"),
    ("content_type", "ContentType"),
    ("response_topic", "ResponseTopic"),
    ("correlation_data", "CorrelationData"),
    ("payload_format_indicator", "PayloadFormatIndicator"),
)
"""Our PublishProperties fields and paho's names for them."""


def _to_paho_properties(props: PublishProperties, packet_type: int) -> Properties | None:
    if props is NO_PROPERTIES or props == NO_PROPERTIES:
        return None
    out = _properties(packet_type)
    for ours, theirs in _SCALAR_PROPERTIES:
        value = getattr(props, ours)
        if value is not None:
            setattr(out, theirs, value)
    if props.user_properties:
        out.UserProperty = list(props.user_properties)
    return out


_PROPERTIES_OWN_ATTRIBUTES = frozenset(vars(_properties(PacketTypes.PUBLISH)))
"""What a paho Properties object holds before any property is set (its lookup tables)."""


def _has_any_property(props: Properties) -> bool:
    """paho stores each property as an attribute beside its own tables."""
    return len(vars(props)) > len(_PROPERTIES_OWN_ATTRIBUTES)


def _from_paho_properties(props: Properties | None) -> PublishProperties:
    if props is None or not _has_any_property(props):
        return NO_PROPERTIES
    raw_ids = getattr(props, "SubscriptionIdentifier", ())
    sub_ids: tuple[int, ...] = (
        tuple(raw_ids) if isinstance(raw_ids, list | tuple) else (int(raw_ids),)
    )
    user = getattr(props, "UserProperty", ())
    return PublishProperties(
        message_expiry_interval=getattr(props, "MessageExpiryInterval", None),
        content_type=getattr(props, "ContentType", None),
        response_topic=getattr(props, "ResponseTopic", None),
        correlation_data=getattr(props, "CorrelationData", None),
        payload_format_indicator=getattr(props, "PayloadFormatIndicator", None),
        user_properties=tuple((str(k), str(v)) for k, v in user),
        subscription_identifiers=sub_ids,
    )


def unpack_publish_properties(block: bytes | bytearray) -> tuple[PublishProperties, int]:
    """A PUBLISH's property block (at the start of ``block``) decoded by paho: (properties,
    bytes it took)."""
    props = _properties(PacketTypes.PUBLISH)
    _, used = props.unpack(bytes(block))  # type: ignore[no-untyped-call]
    return _from_paho_properties(props), int(used)


def _limits_from(props: Properties | None) -> BrokerLimits:
    def get(name: str, default: Any) -> Any:
        return getattr(props, name, default) if props is not None else default

    return BrokerLimits(
        receive_maximum=get("ReceiveMaximum", 65535),
        maximum_packet_size=get("MaximumPacketSize", None),
        maximum_qos=get("MaximumQoS", 2),
        retain_available=bool(get("RetainAvailable", 1)),
        topic_alias_maximum=get("TopicAliasMaximum", 0),
        wildcard_subscription_available=bool(get("WildcardSubscriptionAvailable", 1)),
        shared_subscription_available=bool(get("SharedSubscriptionAvailable", 1)),
        server_keep_alive=get("ServerKeepAlive", None),
        assigned_client_id=get("AssignedClientIdentifier", None),
        session_expiry_interval=get("SessionExpiryInterval", None),
        subscription_identifiers_available=bool(get("SubscriptionIdentifierAvailable", 1)),
    )


def connect_properties(
    settings: ConnectionSettings, auth: tuple[str, bytes | None] | None
) -> Properties:
    """The CONNECT packet's properties for ``settings``; ``auth``: the enhanced
    authentication's method and data for this attempt (read just now), if any."""
    props = _properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = settings.session_expiry
    if settings.receive_maximum is not None:
        props.ReceiveMaximum = settings.receive_maximum
    if settings.maximum_packet_size is not None:
        props.MaximumPacketSize = settings.maximum_packet_size
    if auth is not None:
        method, data = auth
        props.AuthenticationMethod = method
        if data is not None:
            props.AuthenticationData = data
    return props


_REASON_TEXTS: dict[tuple[int, int], str] = {}


def reason_text(code: ReasonCode) -> str:
    """paho's name of a reason code ("Success", "Not authorized", ...), computed once per code
    and packet type (paho looks it up in its tables on every ``str()``)."""
    key = (code.packetType, code.value)
    text = _REASON_TEXTS.get(key)
    if text is None:
        text = _REASON_TEXTS[key] = str(code)
    return text
