"""The lifetime every envoy shares: it borrows a connection and gives back only what it took.

An envoy is created with a connection the application owns (started or not, connected or not).
Disposing it -- ``dispose()``, ``with``/``async with`` -- releases its own subscriptions (the
connection's reference counting sends UNSUBSCRIBE only when no one else still wants the filter),
cancels its own timers and work, and never closes or otherwise touches the connection.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from reactivex import Observable, abc
from reactivex.scheduler.eventloop import AsyncIOScheduler

from rxmqtt._scoped import DisposedOnExit

from .._outcome import Outcome
from ._connection import GrantReportingConnection, MqttConnection, check_connection
from ._errors import AioError, mqtt_error
from ._hlc import HybridLogicalClock, clock_for
from ._protocol import (
    PROTOCOL_VERSION,
    PROTOCOL_VERSION_PROPERTY,
    SOURCE_ID_PROPERTY,
    TIMESTAMP_PROPERTY,
)

_EPOCH = datetime.fromtimestamp(0, UTC)


def scheduler_seconds(scheduler: abc.SchedulerBase) -> float:
    """``scheduler.now`` as seconds (the loop's monotonic clock for an ``AsyncIOScheduler``,
    virtual time for a ``TestScheduler``)."""
    return (scheduler.now - _EPOCH).total_seconds()


class Envoy(DisposedOnExit):
    """Base class: holds the injected connection and implements the dispose protocol."""

    def __init__(self, conn: MqttConnection, *, scheduler: abc.SchedulerBase | None = None) -> None:
        self._conn = check_connection(conn)
        if scheduler is not None and not isinstance(scheduler, abc.SchedulerBase):
            raise TypeError(
                f"scheduler: must be a reactivex scheduler, got {type(scheduler).__name__}"
            )
        self._scheduler = scheduler
        self._loop_scheduler: tuple[asyncio.AbstractEventLoop, AsyncIOScheduler] | None = None
        self._disposed = False

    @property
    def connection(self) -> MqttConnection:
        """The injected connection (owned by the application, not by this envoy)."""
        return self._conn

    @property
    def clock(self) -> HybridLogicalClock:
        """The hybrid logical clock shared by every envoy on this connection (``__ts``)."""
        return clock_for(self._conn, self._conn.settings.client_id)

    def _stamp(self) -> tuple[tuple[str, str], ...]:
        """The reserved user properties every outgoing message carries: ``__ts`` (a fresh
        clock reading), ``__srcId`` (this client id) and ``__protVer``."""
        return (
            (TIMESTAMP_PROPERTY, self.clock.now().encode()),
            (SOURCE_ID_PROPERTY, self._conn.settings.client_id),
            (PROTOCOL_VERSION_PROPERTY, PROTOCOL_VERSION),
        )

    def _granted(
        self, topic_filter: str, what: str, refused: AioError | None = None
    ) -> Observable[None]:
        """Completes once the broker granted the connection's subscription to
        ``topic_filter`` (at once on a connection that cannot tell), or errors with an ``mqtt
        error`` :class:`AioError` about ``what``: ``refused`` when known already."""
        result: Outcome[None] = Outcome()
        conn = self._conn
        if refused is not None:
            result._fail(refused)
        elif not isinstance(conn, GrantReportingConnection):
            result._resolve(None)
        else:
            conn.subscription_granted(topic_filter).subscribe(
                on_next=lambda _qos: result._resolve(None),
                on_error=lambda error: result._fail(self._subscription_failed(error, what)),
            )
        return result

    def _subscription_failed(self, error: Exception, what: str) -> AioError:
        """``error`` (a refused or abandoned subscription) as the ``mqtt error`` to report."""
        return mqtt_error(error, what)

    @property
    def disposed(self) -> bool:
        """Whether :meth:`dispose` was called."""
        return self._disposed

    def dispose(self) -> None:
        """Release what this envoy subscribed and scheduled; idempotent. The connection, and
        other envoys on it, keep working."""
        if self._disposed:
            return
        self._disposed = True
        self._on_dispose()

    def _on_dispose(self) -> None:
        """Subclasses release their resources here (called once)."""

    def _check_live(self, operation: str) -> None:
        if self._disposed:
            raise RuntimeError(f"{operation}: this {type(self).__name__} was disposed")

    def _timer_scheduler(self, operation: str) -> abc.SchedulerBase:
        """The scheduler for timers: the injected one, else an ``AsyncIOScheduler`` on the
        running loop -- the connection's, since envoys are driven from its loop thread. Never
        reactivex's thread-based default scheduler."""
        if self._scheduler is not None:
            return self._scheduler
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                f"{operation}: call it on the connection's asyncio loop thread, or create the "
                f"{type(self).__name__} with scheduler=..."
            ) from None
        cached = self._loop_scheduler
        if cached is None or cached[0] is not loop:
            cached = self._loop_scheduler = (loop, AsyncIOScheduler(loop))
        return cached[1]

    def __repr__(self) -> str:
        state = " disposed" if self._disposed else ""
        return f"<{type(self).__name__}{self._describe()}{state}>"

    def _describe(self) -> str:
        return ""
