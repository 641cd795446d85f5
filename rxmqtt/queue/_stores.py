"""Queue stores: ``MemoryStore`` (nothing survives the process), ``SqliteStore`` (all does).

The :class:`~rxmqtt.queue.OfflineQueue` keeps its own in-memory index, so a store is write-mostly:
it is told about every add and remove and read once, by ``load()``, when a queue starts (after a
process restart). Items exchanged with a store carry ``enqueued_at`` as wall-clock time.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rxmqtt.message import Message, PublishProperties
from rxmqtt.queue._types import QueuedMessage

__all__ = ["MemoryStore", "SqliteStore"]


class MemoryStore:
    """The default store: persists nothing.

    The queue's own index is the only copy of each message, so the per-message memory cost is
    just the queue's. Messages do not survive the queue (or the process); ``load`` is always
    empty.
    """

    __slots__ = ()

    def add(self, item: QueuedMessage) -> None:
        """Nothing to do: the queue holds the message."""

    def remove(self, seq: int) -> None:
        """Nothing to do."""

    def load(self) -> list[QueuedMessage]:
        """Always empty: nothing was persisted."""
        return []

    def flush(self) -> None:
        """Nothing to do."""

    def close(self) -> None:
        """Nothing to do."""

    def __repr__(self) -> str:
        return "MemoryStore()"


_SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queued_messages (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    message_expiry_interval INTEGER,
    content_type TEXT,
    response_topic TEXT,
    correlation_data BLOB,
    payload_format_indicator INTEGER,
    user_properties TEXT NOT NULL,
    subscription_identifiers TEXT NOT NULL,
    enqueued_wall REAL NOT NULL
)
"""

_INSERT = (
    "INSERT OR REPLACE INTO queued_messages (seq, topic, payload, qos, retain, "
    "message_expiry_interval, content_type, response_topic, correlation_data, "
    "payload_format_indicator, user_properties, subscription_identifiers, enqueued_wall) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_SELECT = (
    "SELECT seq, topic, payload, qos, retain, message_expiry_interval, content_type, "
    "response_topic, correlation_data, payload_format_indicator, user_properties, "
    "subscription_identifiers, enqueued_wall FROM queued_messages ORDER BY seq"
)

_Row = tuple[Any, ...]


def _to_row(item: QueuedMessage) -> _Row:
    message = item.message
    props = message.properties
    return (
        item.seq,
        message.topic,
        message.payload,
        message.qos,
        int(message.retain),
        props.message_expiry_interval,
        props.content_type,
        props.response_topic,
        props.correlation_data,
        props.payload_format_indicator,
        json.dumps([list(pair) for pair in props.user_properties]),
        json.dumps(list(props.subscription_identifiers)),
        item.enqueued_at,
    )


def _from_row(row: _Row) -> QueuedMessage:
    (
        seq,
        topic,
        payload,
        qos,
        retain,
        expiry,
        content_type,
        response_topic,
        correlation_data,
        payload_format_indicator,
        user_properties,
        subscription_identifiers,
        enqueued_wall,
    ) = row
    properties = PublishProperties(
        message_expiry_interval=expiry,
        content_type=content_type,
        response_topic=response_topic,
        correlation_data=None if correlation_data is None else bytes(correlation_data),
        payload_format_indicator=payload_format_indicator,
        user_properties=tuple((str(k), str(v)) for k, v in json.loads(user_properties)),
        subscription_identifiers=tuple(int(i) for i in json.loads(subscription_identifiers)),
    )
    message = Message(
        topic=topic, payload=bytes(payload), qos=qos, retain=bool(retain), properties=properties
    )
    return QueuedMessage(seq=seq, message=message, enqueued_at=float(enqueued_wall))


class SqliteStore:
    """Persists queued messages in SQLite (stdlib ``sqlite3``, WAL, ``synchronous=NORMAL``).

    Writes are batched: adds and removes are buffered and written in one transaction when
    ``batch_size`` changes are pending, when ``flush_interval`` seconds have passed since the last
    flush (checked on each change: there is no timer, so an idle process should call ``flush()``
    periodically, e.g. from the connection's housekeeping tick), on ``flush()`` and on ``close()``.
    An add followed by a remove of the same message before a flush never touches the disk, so a
    message queued and sent quickly costs nothing. Durability: what was flushed survives a crash
    of the process (WAL + ``synchronous=NORMAL``); the last unflushed batch does not; a power
    loss may lose the last committed transactions too.

    Everything the broker needs is stored: topic, payload, QoS, retain, every
    ``PublishProperties`` field, and the wall-clock enqueue time so that the Message Expiry
    Interval keeps counting across restarts. ``commits`` counts the transactions written.

    Not thread-safe: use it from one thread at a time (the connection's loop thread).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        batch_size: int = 256,
        flush_interval: float | None = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise TypeError(f"batch_size: must be an int >= 1, got {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size!r}")
        if flush_interval is not None and not flush_interval >= 0:
            raise ValueError(f"flush_interval: must be >= 0 or None, got {flush_interval!r}")
        self.path = str(path)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.commits = 0
        """How many write transactions were committed (to observe batching)."""
        self._clock = clock
        self._last_flush = clock()
        self._adds: dict[int, QueuedMessage] = {}
        self._removes: set[int] = set()
        self._closed = False
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per batch.
        # check_same_thread=False: the store may be created on one thread and used on the
        # connection's loop thread (never concurrently).
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, _SCHEMA_VERSION):
            self._db.close()
            raise ValueError(
                f"path: {self.path!r} holds a queue of schema version {version}, "
                f"this rxmqtt reads version {_SCHEMA_VERSION}"
            )
        self._db.execute(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    @property
    def pending(self) -> int:
        """Changes buffered and not yet written."""
        return len(self._adds) + len(self._removes)

    def add(self, item: QueuedMessage) -> None:
        """Buffer ``item`` for writing (``item.enqueued_at`` is wall-clock time)."""
        self._check_open()
        self._removes.discard(item.seq)
        self._adds[item.seq] = item
        self._maybe_flush()

    def remove(self, seq: int) -> None:
        """Buffer the removal of ``seq``; cancels a still-buffered add of it."""
        self._check_open()
        if self._adds.pop(seq, None) is None:
            self._removes.add(seq)
        self._maybe_flush()

    def load(self) -> list[QueuedMessage]:
        """Every stored message, in ``seq`` order (buffered changes are flushed first)."""
        self._check_open()
        self.flush()
        return [_from_row(row) for row in self._db.execute(_SELECT)]

    def flush(self) -> None:
        """Write the buffered changes in one transaction (nothing to do if none)."""
        self._last_flush = self._clock()
        if self._closed or (not self._adds and not self._removes):
            return
        rows = [_to_row(item) for item in self._adds.values()]
        removes = [(seq,) for seq in self._removes]
        self._db.execute("BEGIN")
        try:
            if rows:
                self._db.executemany(_INSERT, rows)
            if removes:
                self._db.executemany("DELETE FROM queued_messages WHERE seq = ?", removes)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self.commits += 1
        self._adds.clear()
        self._removes.clear()

    def close(self) -> None:
        """Flush and close the database. Idempotent."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._db.close()

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r}, batch_size={self.batch_size})"

    def _maybe_flush(self) -> None:
        if len(self._adds) + len(self._removes) >= self.batch_size or (
            self.flush_interval is not None
            and self._clock() - self._last_flush >= self.flush_interval
        ):
            self.flush()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"SqliteStore({self.path!r}) is closed")
