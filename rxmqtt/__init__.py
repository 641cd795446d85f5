"""rxmqtt: an MQTT 5 connection that survives the real world, with everything that happens to it
as ReactiveX streams.

>>> from rxmqtt import Connection, ConnectionSettings
>>> conn = Connection(ConnectionSettings(host="127.0.0.1", client_id="doc-1"))
>>> conn.state
<ConnectionState.DISCONNECTED: 'disconnected'>
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._aiter import Stream, StreamIterator, aiter
    from .broker_limits import BrokerLimits
    from .connection import Connection
    from .delivery import Delivery
    from .errors import (
        AuthenticationError,
        ConnectionClosedError,
        MessageDroppedError,
        MessageMayBeLostError,
        MqttError,
        PublishError,
        PublishRefusedError,
        ReauthenticationError,
        RetriesExhausted,
        SubscribeError,
    )
    from .lifecycle import (
        Closed,
        Connected,
        ConnectFailed,
        Connecting,
        ConnectionState,
        Disconnect,
        Disconnected,
        DisconnectSource,
        GaveUp,
        LifecycleEvent,
        Reauthenticated,
        SessionLost,
    )
    from .message import Message, PublishProperties, PublishResult
    from .policies import (
        Backoff,
        Drain,
        GracePeriod,
        Jitter,
        Overflow,
        PublishRetry,
        Qos0Offline,
        QueuePolicy,
        ReconnectPolicy,
    )
    from .queue import DroppedMessage, DropReason, QueueStats
    from .settings import (
        Authenticator,
        ConnectionSettings,
        Endpoint,
        K8sSatAuthenticator,
        TlsSettings,
        WebSocketTransport,
        Will,
    )
    from .subscription_options import SubscriptionOptions
    from .topics import InvalidTopicError

# Imported on first use, so the pure layers (policies, operators, queue, settings) load without
# paho and a half-built optional dependency never breaks ``import rxmqtt``.
_EXPORTS: dict[str, str] = {
    "AuthenticationError": "errors",
    "Authenticator": "settings",
    "Backoff": "policies",
    "BrokerLimits": "broker_limits",
    "Closed": "lifecycle",
    "ConnectFailed": "lifecycle",
    "Connected": "lifecycle",
    "Connecting": "lifecycle",
    "Connection": "connection",
    "ConnectionClosedError": "errors",
    "ConnectionSettings": "settings",
    "ConnectionState": "lifecycle",
    "Disconnect": "lifecycle",
    "DisconnectSource": "lifecycle",
    "Delivery": "delivery",
    "Disconnected": "lifecycle",
    "Drain": "policies",
    "DropReason": "queue",
    "DroppedMessage": "queue",
    "Endpoint": "settings",
    "GaveUp": "lifecycle",
    "GracePeriod": "policies",
    "InvalidTopicError": "topics",
    "Jitter": "policies",
    "K8sSatAuthenticator": "settings",
    "LifecycleEvent": "lifecycle",
    "Message": "message",
    "MessageDroppedError": "errors",
    "MessageMayBeLostError": "errors",
    "MqttError": "errors",
    "Overflow": "policies",
    "PublishError": "errors",
    "PublishRefusedError": "errors",
    "PublishProperties": "message",
    "PublishResult": "message",
    "PublishRetry": "policies",
    "Qos0Offline": "policies",
    "QueuePolicy": "policies",
    "QueueStats": "queue",
    "Reauthenticated": "lifecycle",
    "ReauthenticationError": "errors",
    "ReconnectPolicy": "policies",
    "RetriesExhausted": "errors",
    "SessionLost": "lifecycle",
    "Stream": "_aiter",
    "StreamIterator": "_aiter",
    "SubscribeError": "errors",
    "SubscriptionOptions": "subscription_options",
    "TlsSettings": "settings",
    "WebSocketTransport": "settings",
    "Will": "settings",
    "aiter": "_aiter",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rxmqtt' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


try:  # one source for the version: pyproject.toml, read back from the installed metadata
    __version__ = importlib.metadata.version("rxmqtt")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a source tree, not installed
    __version__ = "0+unknown"

__all__ = [
    "AuthenticationError",
    "Authenticator",
    "Backoff",
    "BrokerLimits",
    "Closed",
    "ConnectFailed",
    "Connected",
    "Connecting",
    "Connection",
    "ConnectionClosedError",
    "ConnectionSettings",
    "ConnectionState",
    "Delivery",
    "Disconnect",
    "DisconnectSource",
    "Disconnected",
    "Drain",
    "DropReason",
    "DroppedMessage",
    "Endpoint",
    "GaveUp",
    "GracePeriod",
    "InvalidTopicError",
    "Jitter",
    "K8sSatAuthenticator",
    "LifecycleEvent",
    "Message",
    "MessageDroppedError",
    "MessageMayBeLostError",
    "MqttError",
    "Overflow",
    "PublishError",
    "PublishProperties",
    "PublishRefusedError",
    "PublishResult",
    "PublishRetry",
    "Qos0Offline",
    "QueuePolicy",
    "QueueStats",
    "Reauthenticated",
    "ReauthenticationError",
    "ReconnectPolicy",
    "RetriesExhausted",
    "SessionLost",
    "Stream",
    "StreamIterator",
    "SubscribeError",
    "SubscriptionOptions",
    "TlsSettings",
    "WebSocketTransport",
    "Will",
    "aiter",
]
