"""``Connection``: the engine, the reconnect policy and the offline queue composed into streams.

Everything runs on one asyncio loop (the Qt GUI thread under qasync); every stream emits there.
The reconnect loop is an Rx pipeline: one connection attempt is an observable that emits
``Connected`` and errors when the attempt fails or the link is lost, and
:func:`rxmqtt.operators.retry_with_backoff` resubscribes to it per the :class:`ReconnectPolicy`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future as ThreadFuture
from types import TracebackType
from typing import Any, Self

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import Disposable
from reactivex.scheduler import ImmediateScheduler
from reactivex.scheduler.eventloop import AsyncIOScheduler
from reactivex.subject import ReplaySubject, Subject

from ._isolate import isolated
from ._outcome import Outcome
from ._publisher import Publisher
from ._subscriptions import Subscription, SubscriptionRegistry
from .engine import BrokerLimits, Engine
from .errors import RetriesExhausted, SubscribeError
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
    SessionLost,
    next_state,
)
from .message import NO_PROPERTIES, Message, PublishProperties, PublishResult, check_qos
from .operators import RetryAttempt, retry_with_backoff
from .policies import (
    PublishRetry,
    QueuePolicy,
    ReasonPacket,
    ReconnectPolicy,
)
from .queue import DroppedMessage, QueueStats
from .settings import ConnectionSettings
from .topics import validate_filter, validate_topic

log = logging.getLogger("rxmqtt.connection")

_HOUSEKEEPING_INTERVAL = 1.0
"""Seconds between sweeps of expired queued messages and flushes of a persistent store."""


class _AttemptEnded(Exception):
    """The error one attempt observable ends with: the attempt failed or the link was lost."""

    def __init__(self, disconnect: Disconnect, *, was_connected: bool) -> None:
        super().__init__(str(disconnect))
        self.disconnect = disconnect
        self.was_connected = was_connected


def _as_payload(payload: object) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray | memoryview):
        try:
            return bytes(payload)
        except ValueError as exc:  # a released memoryview
            raise ValueError(f"payload: {exc}") from None
    if isinstance(payload, str):
        try:
            return payload.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                "payload: a str payload must be valid UTF-8 (lone surrogate)"
            ) from None
    raise TypeError(
        f"payload: must be bytes, bytearray, memoryview or str, got {type(payload).__name__}"
    )


class Connection:
    """One MQTT 5 connection owned by the application, with its whole life as streams.

    Create it, ``start()`` it (or ``async with``), inject it into envoys and widgets, ``close()``
    it. It reconnects by itself; nothing about the network ever raises into your code.
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        reconnect: ReconnectPolicy | None = None,
        queue: QueuePolicy | None = None,
        publish_retry: PublishRetry | None = None,
    ) -> None:
        if not isinstance(settings, ConnectionSettings):
            raise TypeError(
                f"settings: must be a ConnectionSettings, got {type(settings).__name__}"
            )
        if reconnect is not None and not isinstance(reconnect, ReconnectPolicy):
            raise TypeError(f"reconnect: must be a ReconnectPolicy, got {type(reconnect).__name__}")
        if queue is not None and not isinstance(queue, QueuePolicy):
            raise TypeError(f"queue: must be a QueuePolicy, got {type(queue).__name__}")
        if publish_retry is not None and not isinstance(publish_retry, PublishRetry):
            raise TypeError(
                f"publish_retry: must be a PublishRetry, got {type(publish_retry).__name__}"
            )
        self._settings = settings
        self._reconnect = reconnect or ReconnectPolicy()
        self._endpoints = settings.all_endpoints()

        self._lifecycle: Subject[LifecycleEvent] = Subject()
        # Immediate delivery: the state is current before any other lifecycle subscriber runs.
        self._states: ReplaySubject[ConnectionState] = ReplaySubject(
            1, scheduler=ImmediateScheduler()
        )
        self._current_state = ConnectionState.DISCONNECTED
        self._lifecycle.pipe(
            ops.scan(next_state, ConnectionState.DISCONNECTED),
            ops.start_with(ConnectionState.DISCONNECTED),
        ).subscribe(self._states)
        self._states.subscribe(self._remember_state)
        self._stats: ReplaySubject[QueueStats] = ReplaySubject(1, scheduler=ImmediateScheduler())
        self._dropped: Subject[DroppedMessage] = Subject()

        self._publisher = Publisher(
            queue or QueuePolicy(),
            publish_retry or PublishRetry(),
            clock=self._now,
            on_dropped=self._dropped.on_next,
            on_stats=self._stats.on_next,
        )
        self._subscriptions = SubscriptionRegistry()
        self._unsubscribe_later: set[str] = set()

        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._engine: Engine | None = None
        self._attempt_observer: abc.ObserverBase[Connected] | None = None
        self._reconnect_subscription: abc.DisposableBase | None = None
        self._attempts_since_connected = 0
        self._endpoint_index = 0
        self._round_failures = 0
        """Endpoints that failed since the retry loop last (re)subscribed: a backoff step is a
        round over every endpoint, so failing over to the next one costs no extra wait."""
        self._ever_connected = False
        self._closed = False
        self._housekeeping: asyncio.TimerHandle | None = None
        self._thread_runner: ThreadRunner | None = None
        self._publisher.publish_stats()

    # ------------------------------------------------------------------ streams

    @property
    def settings(self) -> ConnectionSettings:
        """The settings this connection was created with."""
        return self._settings

    @property
    def lifecycle(self) -> Observable[LifecycleEvent]:
        """Every event of the connection's life, in order; the source the other streams derive
        from. Hot: subscribers see events from the moment they subscribe."""
        return isolated(self._lifecycle)

    @property
    def connection_state(self) -> Observable[ConnectionState]:
        """The current :class:`ConnectionState` on subscribe, then every change."""
        return isolated(self._states.pipe(ops.distinct_until_changed()))

    @property
    def state(self) -> ConnectionState:
        """The latest state (a snapshot of ``connection_state``)."""
        return self._current_state

    @property
    def disconnects(self) -> Observable[Disconnect]:
        """Why each connection ended or each attempt was refused."""
        return isolated(self._lifecycle.pipe(ops.flat_map(_disconnect_of)))

    @property
    def queue_stats(self) -> Observable[QueueStats]:
        """Offline-queue depth, bytes, dropped, drained and in-flight: the current value, then
        every change (while connected, coalesced to one per event-loop pass)."""
        return isolated(self._stats.pipe(ops.distinct_until_changed()))

    @property
    def dropped(self) -> Observable[DroppedMessage]:
        """Every message a policy discarded, with why."""
        return isolated(self._dropped)

    @property
    def broker_limits(self) -> BrokerLimits | None:
        """What the broker's last CONNACK said about itself, once connected."""
        return self._engine.limits if self._engine is not None and self._ever_connected else None

    @property
    def scheduler(self) -> AsyncIOScheduler | None:
        """The scheduler of the loop this connection runs on (``None`` before ``start()``);
        envoys and operators schedule their timers on it."""
        return self._scheduler

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        """Start connecting on the running asyncio loop; returns at once.

        Outcomes arrive on ``lifecycle``/``connection_state``; use :meth:`wait_for` to await one.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "start: needs a running asyncio loop (use `async with conn:` or "
                "`conn.start_in_thread()`)"
            ) from None
        if self._closed:
            raise RuntimeError("start: this connection was closed; create a new Connection")
        if self._loop is not None:
            raise RuntimeError("start: already started")
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._scheduler = AsyncIOScheduler(loop)
        self._engine = Engine(self._settings, loop, self)
        self._publisher.attach(self._engine, loop.call_later)
        self._housekeeping = loop.call_later(_HOUSEKEEPING_INTERVAL, self._tidy)
        self._start_reconnect_loop()

    def _tidy(self) -> None:
        self._publisher.housekeeping()
        assert self._loop is not None
        self._housekeeping = self._loop.call_later(_HOUSEKEEPING_INTERVAL, self._tidy)

    def _start_reconnect_loop(self) -> None:
        policy = self._reconnect
        self._reconnect_subscription = (
            self._attempt()
            .pipe(
                retry_with_backoff(
                    policy.backoff,
                    policy.max_attempts,
                    self._is_retriable,
                    self._scheduler,
                    reset_after=policy.reset_after,
                    on_retry=self._on_retry,
                )
            )
            .subscribe(on_error=self._on_gave_up, scheduler=self._scheduler)
        )

    def configure(
        self, *, reconnect: ReconnectPolicy | None = None, queue: QueuePolicy | None = None
    ) -> None:
        """Apply new policies to the live connection, without a restart.

        A new reconnect policy takes over at once: a connection that is up (or an attempt in
        progress) is kept, a pending backoff wait is cut short and the next attempt starts under
        the new policy, and a FAILED connection starts trying again. A new queue policy re-bounds
        the offline queue now (what no longer fits is reported on ``dropped``).
        """
        if reconnect is not None and not isinstance(reconnect, ReconnectPolicy):
            raise TypeError(f"reconnect: must be a ReconnectPolicy, got {type(reconnect).__name__}")
        if queue is not None and not isinstance(queue, QueuePolicy):
            raise TypeError(f"queue: must be a QueuePolicy, got {type(queue).__name__}")
        self._call_on_loop(self._configure_on_loop, reconnect, queue)

    def _configure_on_loop(
        self, reconnect: ReconnectPolicy | None, queue: QueuePolicy | None
    ) -> None:
        if self._closed:
            return
        if queue is not None:
            self._publisher.set_policy(queue)
        if reconnect is not None:
            self._reconnect = reconnect
            if self._reconnect_subscription is not None:
                self._reconnect_subscription.dispose()
                self._reconnect_subscription = None
                self._attempt_observer = None
            if self._engine is not None:
                self._start_reconnect_loop()

    async def close(self) -> None:
        """Close for good: DISCONNECT (so the broker discards the Will), error what is still
        queued or unacknowledged with :class:`ConnectionClosedError`, complete every stream."""
        if self._closed:
            return
        if self._loop is None:
            self._finish_close(was_connected=False)
            return
        if not self._on_loop_thread():
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.close(), self._loop))
            return
        was_connected = self._engine is not None and self._engine.connected
        self._finish_close(was_connected=was_connected)
        if self._engine is not None:
            await self._engine.wait_closed()  # the broker got DISCONNECT and closed its side

    def _finish_close(self, *, was_connected: bool) -> None:
        self._closed = True
        if self._reconnect_subscription is not None:
            self._reconnect_subscription.dispose()
            self._reconnect_subscription = None
        self._attempt_observer = None
        if self._engine is not None:
            self._engine.close(send_disconnect=True)
            self._engine.forget_in_flight()
        if was_connected:
            self._emit(
                Disconnected(
                    Disconnect(
                        0,
                        "closed by the application",
                        DisconnectSource.USER,
                        at=self._now(),
                    )
                )
            )
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        self._publisher.close()
        self._emit(Closed())
        self._subscriptions.complete_all()
        self._lifecycle.on_completed()
        self._dropped.on_completed()
        self._stats.on_completed()

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def wait_for(
        self, state: ConnectionState, timeout: float | None = None
    ) -> ConnectionState:
        """Wait until ``connection_state`` is ``state``; ``TimeoutError`` after ``timeout``."""
        loop = asyncio.get_running_loop()
        reached: asyncio.Future[ConnectionState] = loop.create_future()

        def on_state(value: ConnectionState) -> None:
            if value is state and not reached.done():
                reached.set_result(value)

        subscription = self.connection_state.subscribe(on_state)
        try:
            return await asyncio.wait_for(reached, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"state {state.name} not reached within {timeout}s (now {self.state.name})"
            ) from None
        finally:
            subscription.dispose()

    def start_in_thread(self) -> ThreadRunner:
        """Run this connection on a private asyncio loop in a daemon thread (for programs that
        do not use asyncio); ``publish()`` and subscriptions then work from any thread.

        Returns a :class:`ThreadRunner`: ``stop(timeout=5.0)`` closes the connection and joins
        the thread, ``loop`` is the private loop, and it is a context manager."""
        if self._thread_runner is not None:
            raise RuntimeError("start_in_thread: already started")
        self._thread_runner = ThreadRunner(self)
        return self._thread_runner

    # ------------------------------------------------------------------ messages

    def messages(self, topic_filter: str, qos: int = 0) -> Observable[Message]:
        """Messages matching ``topic_filter``. The first subscriber sends SUBSCRIBE, the last
        dispose sends UNSUBSCRIBE; overlapping subscribers share one broker subscription.
        Survives reconnects; completes on ``close()``; errors only if the broker refuses it."""
        topic_filter = validate_filter(topic_filter)
        qos = check_qos(qos)

        def subscribe(
            observer: abc.ObserverBase[Message], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            if self._closed:
                observer.on_completed()
                return Disposable()
            self._call_on_loop(self._add_subscriber, topic_filter, qos, observer)
            return Disposable(
                lambda: self._call_on_loop(self._remove_subscriber, topic_filter, observer)
            )

        return isolated(reactivex.create(subscribe))

    def _add_subscriber(
        self, topic_filter: str, qos: int, observer: abc.ObserverBase[Message]
    ) -> None:
        if self._closed:
            observer.on_completed()
            return
        self._unsubscribe_later.discard(topic_filter)
        if self._subscriptions.add(topic_filter, qos, observer):
            self._send_subscribe()

    def _remove_subscriber(self, topic_filter: str, observer: abc.ObserverBase[Message]) -> None:
        if self._closed or not self._subscriptions.remove(topic_filter, observer):
            return
        engine = self._engine
        if engine is not None and engine.connected:
            engine.unsubscribe([topic_filter])
        else:
            self._unsubscribe_later.add(topic_filter)

    def _send_subscribe(self) -> None:
        engine = self._engine
        if engine is None or not engine.connected:
            return
        subs = [sub for sub in self._subscriptions.ungranted() if self._broker_allows(sub)]
        if not subs:
            return
        mid = engine.subscribe([(sub.topic_filter, sub.qos) for sub in subs])
        self._subscriptions.sent(mid, subs)

    def _broker_allows(self, sub: Subscription) -> bool:
        """Refuse locally what the CONNACK said the broker does not support: sending it anyway
        gets a DISCONNECT (0x9E / 0xA2), and the reconnect would send it again, forever."""
        assert self._engine is not None
        limits = self._engine.limits
        if sub.topic_filter.startswith("$share/") and not limits.shared_subscription_available:
            code, reason = 0x9E, "Shared Subscriptions not supported (said the CONNACK)"
        elif ("+" in sub.topic_filter or "#" in sub.topic_filter) and not (
            limits.wildcard_subscription_available
        ):
            code, reason = 0xA2, "Wildcard Subscriptions not supported (said the CONNACK)"
        else:
            return True
        self._subscriptions.refuse(sub, SubscribeError(code, reason, sub.topic_filter))
        return False

    # ------------------------------------------------------------------ publish

    def publish(
        self,
        topic: str,
        payload: bytes | bytearray | memoryview | str = b"",
        qos: int = 0,
        retain: bool = False,
        *,
        properties: PublishProperties | None = None,
        message_expiry_interval: int | None = None,
    ) -> Observable[PublishResult]:
        """Publish now (eagerly); the returned observable (awaitable) emits the
        :class:`PublishResult` once acknowledged, or errors with why it was not.

        While offline the message waits in the offline queue. Callable from any thread.
        """
        topic = validate_topic(topic)
        qos = check_qos(qos)
        if not isinstance(retain, bool):
            raise TypeError(f"retain: must be a bool, got {type(retain).__name__}")
        data = _as_payload(payload)
        if properties is None:
            properties = NO_PROPERTIES
        elif not isinstance(properties, PublishProperties):
            raise TypeError(
                f"properties: must be a PublishProperties, got {type(properties).__name__}"
            )
        if message_expiry_interval is not None:
            if isinstance(message_expiry_interval, bool) or not isinstance(
                message_expiry_interval, int
            ):
                raise TypeError(
                    "message_expiry_interval: must be an int (whole seconds), "
                    f"got {type(message_expiry_interval).__name__}"
                )
            if not 0 <= message_expiry_interval <= 0xFFFFFFFF:
                raise ValueError(
                    "message_expiry_interval: must be whole seconds in 0..4294967295, "
                    f"got {message_expiry_interval!r}"
                )
            properties = dataclasses.replace(
                properties, message_expiry_interval=message_expiry_interval
            )
        message = Message(topic, data, qos, retain, properties)
        limits = self.broker_limits
        if limits is not None and limits.maximum_packet_size is not None:
            approx_packet = message.size + 16
            if approx_packet > limits.maximum_packet_size:
                raise ValueError(
                    f"payload: the PUBLISH would be about {approx_packet} bytes, over the "
                    f"broker's maximum packet size of {limits.maximum_packet_size}"
                )
        result: Outcome[PublishResult] = Outcome()
        self._call_on_loop(self._publisher.publish, message, result)
        return result

    # ------------------------------------------------------------------ reconnect loop

    def _attempt(self) -> Observable[Connected]:
        """One connection attempt as an observable: emits ``Connected`` on CONNACK success,
        errors with ``_AttemptEnded`` when the attempt fails or the link is later lost."""

        def subscribe(
            observer: abc.ObserverBase[Connected], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            engine = self._engine
            assert engine is not None
            self._attempt_observer = observer

            def dispose() -> None:
                if self._attempt_observer is observer:
                    self._attempt_observer = None

            if engine.connected:  # a new policy adopts the live connection
                observer.on_next(Connected(engine.session_present, str(engine.endpoint)))
            elif not engine.attempt_in_progress:  # (or adopts the attempt under way)
                self._round_failures = 0
                self._open_attempt()
            return Disposable(dispose)

        return reactivex.create(subscribe)

    def _open_attempt(self) -> None:
        engine = self._engine
        assert engine is not None
        self._attempts_since_connected += 1
        endpoint = self._endpoints[self._endpoint_index % len(self._endpoints)]
        self._emit(Connecting(self._attempts_since_connected, str(endpoint)))
        clean_start = self._settings.clean_start and not self._ever_connected
        engine.open(endpoint, clean_start=clean_start)

    def _is_retriable(self, error: Exception) -> bool:
        if not isinstance(error, _AttemptEnded):
            return False
        if error.disconnect.fatal:
            return False
        return self._ever_connected or self._reconnect.retry_first_connect

    def _with_fatality(self, disconnect: Disconnect, packet: ReasonPacket) -> Disconnect:
        fatal = disconnect.fatal or (
            disconnect.source is DisconnectSource.SERVER
            and self._reconnect.is_fatal_in(disconnect.reason_code, packet)
        )
        return dataclasses.replace(disconnect, fatal=fatal)

    def _on_retry(self, attempt: RetryAttempt) -> None:
        error = attempt.error
        assert isinstance(error, _AttemptEnded)
        self._emit(_failure_event(error, self._attempts_since_connected, attempt.delay))

    def _on_gave_up(self, error: Exception) -> None:
        if isinstance(error, RetriesExhausted):
            ended = error.last_error
            reason = f"gave up after {error.attempts} retries"
        else:
            ended = error
            reason = "fatal"
        if not isinstance(ended, _AttemptEnded):
            log.error("reconnect loop failed unexpectedly", exc_info=ended)
            self._emit(GaveUp(f"internal error: {ended!r}"))
            return
        if reason == "fatal" and not ended.disconnect.fatal:
            reason = "the first connection failed and retry_first_connect is False"
        self._emit(_failure_event(ended, self._attempts_since_connected, None))
        self._emit(GaveUp(f"{reason}: {ended.disconnect}", ended.disconnect))

    # ------------------------------------------------------------------ engine handler

    def on_connack(self, session_present: bool, limits: BrokerLimits) -> None:
        assert self._engine is not None
        endpoint = self._engine.endpoint
        had_session = self._ever_connected
        self._ever_connected = True
        self._attempts_since_connected = 0
        self._emit(Connected(session_present, str(endpoint)))
        self._subscriptions.connected()
        if not session_present:
            self._subscriptions.session_lost()
            self._unsubscribe_later.clear()
            if had_session and self._settings.session_expiry > 0:
                self._emit(SessionLost())
        if self._unsubscribe_later:
            self._engine.unsubscribe(sorted(self._unsubscribe_later))
            self._unsubscribe_later.clear()
        self._send_subscribe()
        self._publisher.connected()
        observer = self._attempt_observer
        if observer is not None:
            observer.on_next(Connected(session_present, str(endpoint)))

    def on_connect_failed(self, disconnect: Disconnect) -> None:
        self._endpoint_index += 1
        self._round_failures += 1
        ended = _AttemptEnded(self._with_fatality(disconnect, "CONNACK"), was_connected=False)
        if (
            not ended.disconnect.fatal
            and self._round_failures < len(self._endpoints)
            and self._attempt_observer is not None
        ):
            # Fail over at once: the backoff waits between rounds over all endpoints.
            self._emit(_failure_event(ended, self._attempts_since_connected, 0.0))
            self._open_attempt()
            return
        self._end_attempt(ended)

    def on_connection_lost(self, disconnect: Disconnect) -> None:
        self._publisher.link_lost()
        self._end_attempt(
            _AttemptEnded(self._with_fatality(disconnect, "DISCONNECT"), was_connected=True)
        )

    def _end_attempt(self, error: _AttemptEnded) -> None:
        observer, self._attempt_observer = self._attempt_observer, None
        if observer is not None:
            observer.on_error(error)

    def on_message(self, message: Message) -> None:
        self._subscriptions.dispatch(message)

    def on_publish_done(self, mid: int, reason_code: int, reason: str) -> None:
        self._publisher.acknowledged(mid, reason_code, reason)

    def on_suback(self, mid: int, reason_codes: list[tuple[int, str]]) -> None:
        self._subscriptions.acknowledged(mid, reason_codes)

    def on_unsuback(self, mid: int) -> None:
        pass

    # ------------------------------------------------------------------ plumbing

    def _emit(self, event: LifecycleEvent) -> None:
        log.debug("lifecycle: %s", event)
        self._lifecycle.on_next(event)

    def _remember_state(self, state: ConnectionState) -> None:
        self._current_state = state

    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else 0.0

    def _on_loop_thread(self) -> bool:
        return self._loop_thread is None or self._loop_thread == threading.get_ident()

    def _call_on_loop(self, func: Callable[..., None], *args: Any) -> None:
        """Run ``func`` on the connection's loop: now if already there (or not started yet),
        else hop with ``call_soon_threadsafe``."""
        if self._loop is None or self._on_loop_thread():
            func(*args)
        else:
            self._loop.call_soon_threadsafe(func, *args)


def _disconnect_of(event: LifecycleEvent) -> Observable[Disconnect]:
    if isinstance(event, Disconnected | ConnectFailed):
        return reactivex.just(event.disconnect)
    return reactivex.empty()


def _failure_event(
    error: _AttemptEnded, attempt: int, retry_in: float | None
) -> ConnectFailed | Disconnected:
    disconnect = error.disconnect
    if error.was_connected:
        return Disconnected(disconnect, retry_in)
    return ConnectFailed(disconnect.reason_code, disconnect.reason, attempt, retry_in, disconnect)


class ThreadRunner:
    """Runs a connection on a private loop in a daemon thread (see
    :meth:`Connection.start_in_thread`); ``stop()`` closes it and joins the thread."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._loop = asyncio.new_event_loop()
        started: ThreadFuture[None] = ThreadFuture()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="rxmqtt-loop", daemon=True
        )
        self._thread.start()
        started.result()

    def _run(self, started: ThreadFuture[None]) -> None:
        asyncio.set_event_loop(self._loop)

        def begin() -> None:
            try:
                self._connection.start()
            except BaseException as exc:
                started.set_exception(exc)
            else:
                started.set_result(None)

        self._loop.call_soon(begin)
        self._loop.run_forever()
        self._loop.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def stop(self, timeout: float = 5.0) -> None:
        """Close the connection and stop the thread."""
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._connection.close(), self._loop)
        try:
            future.result(timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
