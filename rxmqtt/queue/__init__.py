"""The offline queue: messages waiting for the connection, bounded, expiring and persistable.

Pure (no sockets, no event loop); the only I/O is the optional SQLite store.
"""

from rxmqtt.queue._offline_queue import OfflineQueue
from rxmqtt.queue._stores import MemoryStore, SqliteStore
from rxmqtt.queue._types import (
    DroppedMessage,
    DropReason,
    QueuedMessage,
    QueueStats,
    QueueStore,
)

__all__ = [
    "DropReason",
    "DroppedMessage",
    "MemoryStore",
    "OfflineQueue",
    "QueueStats",
    "QueueStore",
    "QueuedMessage",
    "SqliteStore",
]
