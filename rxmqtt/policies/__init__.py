"""Policies: pure, validated values that say how the connection reacts to failure.

- :class:`Backoff` / :class:`Jitter`: the delays between retries.
- :class:`ReconnectPolicy`: when and how to reconnect, and when to give up.
- :class:`PublishRetry`: ack timeouts and re-sending transiently refused publishes.
- :class:`GracePeriod`: how long and how much unmatched messages wait for a late subscriber.
- :class:`QueuePolicy` / :class:`Overflow` / :class:`Drain` / :class:`Qos0Offline`: the offline
  queue.
- :data:`REASON_CODES` and its helpers: the one table of MQTT 5 reason codes, saying which ones
  end reconnecting (see :func:`is_fatal_reason_code`).

Nothing here performs I/O or keeps time; the connection and the operators in
:mod:`rxmqtt.operators` put these values to work.
"""

from ._backoff import Backoff, Jitter
from ._grace_period import GracePeriod
from ._publish_retry import PublishRetry
from ._queue import Drain, Overflow, Qos0Offline, QueuePolicy
from ._reason_codes import (
    REASON_CODES,
    V311_CONNACK_CODES,
    ReasonCodeInfo,
    ReasonPacket,
    is_fatal_reason_code,
    is_per_message_disconnect_code,
    is_retriable_publish_code,
    reason_name,
    v311_connack_reason_code,
)
from ._reconnect import ReconnectPolicy

__all__ = [
    "REASON_CODES",
    "V311_CONNACK_CODES",
    "Backoff",
    "Drain",
    "GracePeriod",
    "Jitter",
    "Overflow",
    "PublishRetry",
    "Qos0Offline",
    "QueuePolicy",
    "ReasonCodeInfo",
    "ReasonPacket",
    "ReconnectPolicy",
    "is_fatal_reason_code",
    "is_per_message_disconnect_code",
    "is_retriable_publish_code",
    "reason_name",
    "v311_connack_reason_code",
]
