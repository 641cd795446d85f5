"""Envoys (binders) speaking the Azure IoT Operations (AIO) protocol: telemetry and commands on
a connection the application owns and injects.

- :class:`TelemetrySender` / :class:`TelemetryReceiver`: typed samples out of a device and into
  any number of readers (:class:`Telemetry` carries value, topic tokens, source, timestamp).
- :class:`CommandInvoker` / :class:`CommandExecutor`: MQTT 5 request/response (Response Topic,
  Correlation Data, Message Expiry) with timeouts, typed errors, shared-subscription load
  balancing and de-duplication of re-delivered requests.
- Serializers: :class:`JsonSerializer` (default), :class:`RawBytesSerializer`,
  :class:`TextSerializer`, or anything implementing :class:`Serializer`.

Envoys never own the connection: disposing one releases only its own subscriptions and timers.
This layer depends on :mod:`rxmqtt`'s pure modules and the :class:`MqttConnection` protocol,
never on paho or Qt.
"""

from ._acks import Delivery, ManualAckConnection, deliveries
from ._cloudevents import CloudEvent
from ._connection import MqttConnection
from ._dedup import DedupCache
from ._envoy import Envoy
from ._errors import (
    AioError,
    CommandError,
    CommandExecutionError,
    CommandTimeoutError,
    EnvoyDisposedError,
    ErrorKind,
    InvalidConfigurationError,
    PayloadError,
    error_kind,
)
from ._executor import CommandExecutor
from ._executor_jobs import SkippedRequest, SkipReason
from ._hlc import HybridLogicalClock, Timestamp
from ._invoker import CommandInvoker, CommandResponse
from ._metadata import CommandRequest, CommandResult
from ._protocol import (
    PROTOCOL_VERSION,
    PROTOCOL_VERSION_PROPERTY,
    SOURCE_ID_PROPERTY,
    STATUS_MESSAGE_PROPERTY,
    STATUS_PROPERTY,
    TIMESTAMP_PROPERTY,
    Status,
)
from ._serializers import (
    JSON,
    RAW,
    TEXT,
    JsonSerializer,
    RawBytesSerializer,
    Serializer,
    TextSerializer,
)
from ._telemetry import Telemetry, TelemetryReceiver, TelemetrySender

__all__ = [
    "JSON",
    "PROTOCOL_VERSION",
    "PROTOCOL_VERSION_PROPERTY",
    "RAW",
    "SOURCE_ID_PROPERTY",
    "STATUS_MESSAGE_PROPERTY",
    "STATUS_PROPERTY",
    "TEXT",
    "TIMESTAMP_PROPERTY",
    "AioError",
    "CloudEvent",
    "CommandError",
    "CommandExecutionError",
    "CommandExecutor",
    "CommandInvoker",
    "CommandRequest",
    "CommandResponse",
    "CommandResult",
    "CommandTimeoutError",
    "DedupCache",
    "Delivery",
    "Envoy",
    "EnvoyDisposedError",
    "ErrorKind",
    "HybridLogicalClock",
    "InvalidConfigurationError",
    "JsonSerializer",
    "ManualAckConnection",
    "MqttConnection",
    "PayloadError",
    "RawBytesSerializer",
    "Serializer",
    "SkipReason",
    "SkippedRequest",
    "Status",
    "Telemetry",
    "TelemetryReceiver",
    "TelemetrySender",
    "TextSerializer",
    "Timestamp",
    "deliveries",
    "error_kind",
]
