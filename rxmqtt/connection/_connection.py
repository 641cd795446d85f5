"""``Connection``: the engine, the reconnect loop, the subscriptions and the publisher composed
into streams. Everything runs on one asyncio loop (the Qt GUI thread under qasync); every stream
emits there; ``lifecycle`` is the source the other streams derive from."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import math
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, Self, overload

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import Disposable
from reactivex.scheduler.eventloop import AsyncIOScheduler

from .._aiter import Stream
from .._checks import check_bool
from .._grace_buffer import GraceBuffer
from .._isolate import isolated
from .._lazy_subject import LazySubject
from .._outcome import Outcome, settle_error, settle_value
from .._publisher import Publisher
from .._subscriptions import Subscription, SubscriptionRegistry
from ..broker_limits import BrokerLimits
from ..delivery import Delivery
from ..engine import Engine
from ..errors import ConnectionClosedError, MqttError, SubscribeError
from ..lifecycle import (
    Closed,
    Connected,
    ConnectFailed,
    ConnectionState,
    Disconnect,
    Disconnected,
    DisconnectSource,
    LifecycleEvent,
    Reauthenticated,
    SessionLost,
    next_state,
)
from ..message import Message, PublishProperties, PublishResult, check_qos
from ..policies import (
    GracePeriod,
    PublishRetry,
    QueuePolicy,
    ReconnectPolicy,
)
from ..queue import DroppedMessage, DropReason, QueueStats
from ..settings import ConnectionSettings
from ..settings._protocol import MQTT5_NEEDED, MQTT_3_1_1
from ..subscription_options import SubscriptionOptions
from ..topics import split_shared, validate_filter
from ._acknowledger import Acknowledger
from ._backlog import DEFAULT_BACKLOG, Backlog
from ._publish_arguments import message_from_arguments
from ._reauthentication import Reauthentication
from ._reconnect_loop import ReconnectLoop
from ._thread_runner import ThreadRunner

log = logging.getLogger("rxmqtt.connection")

_UNMATCHED_LOG_INTERVAL = 10.0
"""Seconds between INFO/WARNING lines about unmatched messages (a stale subscription left in a
session can bring thousands a second); in between they are logged at DEBUG and counted."""


class Connection:
    """One MQTT 5 connection owned by the application, with its whole life as streams.

    Create it, ``start()`` it (or ``async with``), inject it into envoys and widgets, ``close()``
    it. It reconnects by itself; nothing about the network ever raises into your code.
    """

    supports_manual_ack = True
    """``messages(f, qos, manual_ack=True)`` acknowledges after processing (see
    :class:`~rxmqtt.Delivery`); the AIO envoys rely on it."""

    def __init__(
        self,
        settings: ConnectionSettings | str,
        *,
        reconnect: ReconnectPolicy | None = None,
        queue: QueuePolicy | None = None,
        publish_retry: PublishRetry | None = None,
        grace_period: GracePeriod | None = None,
        **overrides: Any,
    ) -> None:
        """``settings``: a :class:`ConnectionSettings` or a URL for
        :meth:`ConnectionSettings.from_url` (``"mqtt://host:1883?client_id=dev-1"``);
        ``overrides``: :class:`ConnectionSettings` fields that replace the settings' (or the
        URL's) values, e.g. ``Connection("mqtt://broker", client_id="dev-1", keep_alive=30)``.
        A bad URL raises ``ValueError`` naming the part that is wrong."""
        settings = _settings_of(settings, overrides)
        if reconnect is not None and not isinstance(reconnect, ReconnectPolicy):
            raise TypeError(f"reconnect: must be a ReconnectPolicy, got {type(reconnect).__name__}")
        if queue is not None and not isinstance(queue, QueuePolicy):
            raise TypeError(f"queue: must be a QueuePolicy, got {type(queue).__name__}")
        if publish_retry is not None and not isinstance(publish_retry, PublishRetry):
            raise TypeError(
                f"publish_retry: must be a PublishRetry, got {type(publish_retry).__name__}"
            )
        if grace_period is not None and not isinstance(grace_period, GracePeriod):
            raise TypeError(
                f"grace_period: must be a GracePeriod, got {type(grace_period).__name__}"
            )
        self._settings = settings

        self._lifecycle: LazySubject[LifecycleEvent] = LazySubject()
        # The state follows each lifecycle event before any lifecycle subscriber hears of it
        # (see _emit).
        self._current_state = ConnectionState.DISCONNECTED
        self._states: LazySubject[ConnectionState] = LazySubject(current_value=True)
        self._states.on_next(self._current_state)
        self._stats: LazySubject[QueueStats] = LazySubject(current_value=True)
        self._dropped: LazySubject[DroppedMessage] = LazySubject()

        self._publisher = Publisher(
            queue or QueuePolicy(),
            publish_retry or PublishRetry(),
            clock=self._now,
            on_dropped=self._dropped.on_next,
            on_stats=self._stats.on_next,
        )
        self._reconnect_loop = ReconnectLoop(settings, reconnect or ReconnectPolicy(), self._emit)
        self._reauthentication = Reauthentication(settings.enhanced_authenticator(), self._emit)
        self._subscriptions = SubscriptionRegistry()
        self._grace_period = grace_period or GracePeriod()
        self._grace = GraceBuffer(self._grace_period, clock=self._now)
        self._grace_timer: asyncio.TimerHandle | None = None
        self._unmatched: LazySubject[Message] = LazySubject()
        self._unmatched_logged_at = -math.inf
        self._unmatched_since_log = 0
        self._holds: dict[str, Backlog] = {}
        """What ``subscribe()`` holds, by filter."""
        self._identifiers = itertools.count(1)
        """Subscription Identifiers, one per broker subscription (1..268,435,455)."""
        self._acks = Acknowledger(self._call_on_loop)
        """Holds each received QoS 1/2 message's PUBACK/PUBREC until its subscribers are done."""

        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._engine: Engine | None = None
        self._closed = False
        self._thread_runner: ThreadRunner | None = None
        self._publisher.publish_stats()

    # ------------------------------------------------------------------ streams

    @property
    def settings(self) -> ConnectionSettings:
        """The settings this connection was created with."""
        return self._settings

    @property
    def lifecycle(self) -> Stream[LifecycleEvent]:
        """Every event of the connection's life, in order; the source the other streams derive
        from. Hot: subscribers see events from the moment they subscribe."""
        return isolated(self._lifecycle.subject())

    @property
    def connection_state(self) -> Stream[ConnectionState]:
        """The current :class:`ConnectionState` on subscribe, then every change."""
        return isolated(self._states.subject().pipe(ops.distinct_until_changed()))

    @property
    def state(self) -> ConnectionState:
        """The latest state (a snapshot of ``connection_state``)."""
        return self._current_state

    @property
    def disconnects(self) -> Stream[Disconnect]:
        """Why each connection ended or each attempt was refused."""
        return isolated(self._lifecycle.subject().pipe(ops.flat_map(_disconnect_of)))

    @property
    def queue_stats(self) -> Stream[QueueStats]:
        """Offline-queue depth, bytes, dropped, drained and in-flight: the current value, then
        every change (while connected, coalesced to one per event-loop pass)."""
        return isolated(self._stats.subject().pipe(ops.distinct_until_changed()))

    @property
    def dropped(self) -> Stream[DroppedMessage]:
        """Every message a policy discarded, with why: publishes the offline queue or the retry
        policy gave up on, and received messages that nobody took (``DropReason.UNMATCHED``:
        see :attr:`unmatched_messages`)."""
        return isolated(self._dropped.subject())

    @property
    def unmatched_messages(self) -> Observable[Message]:
        """Received messages that no ``messages()`` subscription took: those that matched none
        on arrival and were not claimed by one within the :class:`GracePeriod` after a CONNACK
        (e.g. a resumed session's queue, or a message still on its way when its filter was
        disposed). Hot. While nobody observes this stream, each such message is reported on
        ``dropped`` (``DropReason.UNMATCHED``) instead, so none is lost unseen."""
        return isolated(self._unmatched.subject())

    @property
    def broker_limits(self) -> BrokerLimits | None:
        """What the broker's last CONNACK said about itself, once connected."""
        engine = self._engine
        return engine.limits if engine is not None and self._reconnect_loop.ever_connected else None

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
        self._engine.manual_acks(True)
        self._acks.attach(self._engine.ack)
        self._publisher.attach(self._engine, loop.call_later)
        self._reconnect_loop.start(self._engine, self._scheduler)
        self._reauthentication.start(self._engine, self._scheduler)

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
            self._reconnect_loop.set_policy(reconnect)

    async def close(self, *, end_session: bool = False) -> None:
        """Close for good: DISCONNECT (so the broker discards the Will), error what is still
        queued or unacknowledged with :class:`ConnectionClosedError`, complete every stream.

        By default the broker keeps a named client's session (its subscriptions and the
        messages queued for it) for ``session_expiry`` seconds, so the next start with the same
        client id resumes it. ``end_session=True`` sends Session Expiry Interval 0 in the
        DISCONNECT: the broker discards the session now (the next start finds
        ``session_present`` False). It takes effect only while connected; closed offline, the
        session expires on the broker by itself.
        """
        check_bool("end_session", end_session)
        if end_session and self._settings.protocol_version == MQTT_3_1_1:
            raise ValueError(
                "end_session: needs MQTT 5 (protocol_version=5); an MQTT 3.1.1 session ends "
                "with the connection only with clean_start=True (Clean Session 1)"
            )
        if self._closed:
            return
        if self._loop is None:
            self._finish_close(was_connected=False, end_session=end_session)
            return
        if not self._on_loop_thread():
            await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(self.close(end_session=end_session), self._loop)
            )
            return
        was_connected = self._engine is not None and self._engine.link_up
        self._finish_close(was_connected=was_connected, end_session=end_session)
        if self._engine is not None:
            await self._engine.wait_closed()  # the broker got DISCONNECT and closed its side

    def _finish_close(self, *, was_connected: bool, end_session: bool) -> None:
        self._closed = True
        self._acks.link_lost()
        self._reconnect_loop.stop()
        self._reauthentication.stop()
        if self._engine is not None:
            self._engine.close(send_disconnect=True, end_session=end_session)
            self._engine.forget_in_flight()
        if was_connected:
            self._emit(
                Disconnected(
                    Disconnect(
                        None if self._settings.protocol_version == MQTT_3_1_1 else 0,
                        "closed by the application" + (" (session ended)" if end_session else ""),
                        DisconnectSource.USER,
                        at=self._now(),
                    )
                )
            )
        if self._grace_timer is not None:
            self._grace_timer.cancel()
        self._publisher.close()
        self._emit(Closed())
        closed = ConnectionClosedError("the connection was closed before the broker granted it")
        for sub in self._subscriptions.all():
            waiters, sub.waiters = sub.waiters, []
            for waiter in waiters:
                settle_error(waiter, closed)
        holds, self._holds = self._holds, {}
        for held in holds.values():
            for message in held.take():
                self._report_unread(message)
        self._subscriptions.complete_all()
        self._release_unmatched(self._grace.clear())
        self._states.on_completed()
        self._lifecycle.on_completed()
        self._dropped.on_completed()
        self._unmatched.on_completed()
        self._stats.on_completed()

    def reauthenticate(self) -> Outcome[Reauthenticated]:
        """Re-authenticate the live connection (MQTT 5 enhanced authentication) without
        dropping it: AUTH Re-authenticate with the authenticator's data read afresh, then its
        challenge rounds. The returned observable (awaitable) emits the
        :class:`Reauthenticated` event (also on ``lifecycle``) on AUTH Success, or errors with
        :class:`~rxmqtt.errors.ReauthenticationError`: not connected, the authenticator failed,
        no answer within ``connect_timeout``, or the connection ended on the way (its
        ``disconnect`` tells why; a refusing server sends DISCONNECT, which also arrives on
        ``disconnects``, and the reconnect policy decides what follows). A call while one is
        under way is answered by the next exchange. Callable from any thread.

        Needs ``authenticator`` or ``auth_method`` in the settings (``RuntimeError`` if not).
        """
        if self._reauthentication.authenticator is None:
            raise RuntimeError(
                "reauthenticate: the settings have no enhanced authentication "
                "(give ConnectionSettings an authenticator or an auth_method)"
            )
        result: Outcome[Reauthenticated] = Outcome()
        self._call_on_loop(self._reauthentication.reauthenticate, result)
        return result

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

    @overload
    def messages(
        self,
        topic_filter: str,
        qos: int = 0,
        *,
        no_local: bool | None = None,
        retain_as_published: bool | None = None,
        retain_handling: int | None = None,
        manual_ack: Literal[False] = False,
    ) -> Stream[Message]: ...

    @overload
    def messages(
        self,
        topic_filter: str,
        qos: int = 0,
        *,
        no_local: bool | None = None,
        retain_as_published: bool | None = None,
        retain_handling: int | None = None,
        manual_ack: Literal[True],
    ) -> Stream[Delivery]: ...

    def messages(
        self,
        topic_filter: str,
        qos: int = 0,
        *,
        no_local: bool | None = None,
        retain_as_published: bool | None = None,
        retain_handling: int | None = None,
        manual_ack: bool = False,
    ) -> Stream[Message] | Stream[Delivery]:
        """Messages matching ``topic_filter``. The first subscriber sends SUBSCRIBE, the last
        dispose sends UNSUBSCRIBE; overlapping subscribers share one broker subscription.
        Survives reconnects; completes on ``close()``; errors only if the broker refuses it.

        A subscriber first gets, in arrival order, the messages that arrived in the
        :class:`GracePeriod` after a CONNACK, matched no subscription then, and match its filter
        (a resumed session's queue reaches a subscriber created after ``start()``).

        ``async for message in conn.messages(f):`` reads it with a bounded buffer (see
        :func:`rxmqtt.aiter`); leaving the loop unsubscribes.

        The MQTT 5 subscription options (``no_local``, ``retain_as_published``,
        ``retain_handling``: see :class:`~rxmqtt.SubscriptionOptions`) belong to the filter's
        one broker subscription. ``None`` (the default) takes what the live subscription has
        (the MQTT defaults for a new one); a value that differs from a live subscription's is
        an error (``ValueError`` naming the option, raised here when it is already live, else
        delivered to the new subscriber). QoS never conflicts: the highest asked is used.

        ``manual_ack=True`` acknowledges after processing: the stream emits
        :class:`~rxmqtt.Delivery` items, and a QoS 1/2 message's PUBACK/PUBREC waits until
        ``delivery.ack()`` (and every other subscriber of the message is done, and every
        message received before it was acknowledged: MQTT 5 acknowledges in arrival order).
        What is not acknowledged when the link drops, the broker sends again (a persisting
        session), and the client's ``receive_maximum`` bounds how many it sends unacknowledged.
        Disposing releases what the subscriber still holds. See docs/acknowledgement.md.
        """
        if not isinstance(manual_ack, bool):
            raise TypeError(f"manual_ack: must be a bool, got {type(manual_ack).__name__}")
        topic_filter, qos, wanted = _request(
            topic_filter, qos, no_local, retain_as_published, retain_handling, self._settings
        )
        conflict = self._conflict(topic_filter, wanted) if self._on_loop_thread() else None
        if conflict is not None:
            raise conflict
        if manual_ack:
            return self._deliveries(topic_filter, qos, wanted)

        def subscribe(
            observer: abc.ObserverBase[Message], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            if self._closed:
                observer.on_completed()
                return Disposable()
            self._call_on_loop(self._add_subscriber, topic_filter, qos, wanted, observer)
            return _Unsubscribe(self, topic_filter, observer)

        return isolated(reactivex.create(subscribe), on_drop=self._report_unread)

    def _deliveries(self, topic_filter: str, qos: int, wanted: dict[str, Any]) -> Stream[Delivery]:
        """``messages(..., manual_ack=True)``: each subscriber is a manual reader."""

        def subscribe(
            observer: abc.ObserverBase[Delivery], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            if self._closed:
                observer.on_completed()
                return Disposable()
            reader = self._acks.reader(observer)
            self._call_on_loop(self._add_subscriber, topic_filter, qos, wanted, reader)

            def dispose() -> None:
                self._remove_subscriber(topic_filter, reader)
                reader.release_all()

            return Disposable(lambda: self._acks.on_loop(dispose))

        return isolated(reactivex.create(subscribe), on_drop=self._unread_delivery)

    def _unread_delivery(self, delivery: Delivery) -> None:
        """A slow ``async for`` lost ``delivery``: it is done with (acknowledged), reported."""
        delivery.ack()
        self._report_unread(delivery.message)

    def subscription_granted(self, topic_filter: str) -> Observable[int]:
        """Wait for the broker to grant the ``messages()`` subscription of ``topic_filter``: an
        awaitable observable of the granted QoS (at once when granted already). It errors with
        :class:`~rxmqtt.SubscribeError` when the broker refuses it, with
        :class:`~rxmqtt.ConnectionClosedError` on ``close()``, and with
        :class:`~rxmqtt.MqttError` when no ``messages()`` subscriber holds the filter (or the
        last one left before the grant). Offline, it waits for the connection. Envoys use it
        to know when they are listening."""
        topic_filter = validate_filter(topic_filter)
        granted: Outcome[int] = Outcome()
        self._call_on_loop(self._await_grant, topic_filter, granted)
        return granted

    def _await_grant(self, topic_filter: str, granted: Outcome[int]) -> None:
        if self._closed:
            settle_error(
                granted, ConnectionClosedError(f"subscription_granted({topic_filter!r}): closed")
            )
            return
        sub = self._subscriptions.get(topic_filter)
        if sub is None:
            settle_error(
                granted,
                MqttError(
                    f"subscription_granted({topic_filter!r}): no messages() subscriber holds it "
                    "(messages() subscribes when subscribed to; rxmqtt.aiter(...) does at once)"
                ),
            )
        else:
            self._settle_or_wait(sub, granted)

    def _settle_or_wait(self, sub: Subscription, granted: Outcome[int]) -> None:
        """Settle ``granted`` with the broker's grant when the link is up; offline, a grant is
        the last link's and the broker may have lost it: wait for the next CONNACK (then
        ``grants_confirmed``) or SUBACK."""
        engine = self._engine
        if sub.granted and sub.granted_qos is not None and engine is not None and engine.link_up:
            settle_value(granted, sub.granted_qos)
        else:
            sub.waiters.append(granted)

    async def subscribe(
        self,
        topic_filter: str,
        qos: int = 0,
        *,
        no_local: bool | None = None,
        retain_as_published: bool | None = None,
        retain_handling: int | None = None,
    ) -> int:
        """Subscribe ``topic_filter`` at the broker and wait until it is granted: returns the
        QoS the broker granted, or raises :class:`~rxmqtt.SubscribeError` with its reason code.

        The subscription is held until :meth:`unsubscribe` (or ``close()``), across reconnects,
        whether or not anyone reads it. While no ``messages()`` reader of the same filter is
        attached, its messages are kept (at most 1,000, the oldest reported on ``dropped`` as
        ``UNREAD``) and handed to the next reader first: ``await conn.subscribe(f)`` then
        ``async for m in conn.messages(f)`` loses nothing in between. Options: as for
        :meth:`messages`. Offline, it waits for the connection (bound it with
        ``asyncio.timeout``); cancelling the wait keeps the subscription requested.
        """
        topic_filter, qos, wanted = _request(
            topic_filter, qos, no_local, retain_as_published, retain_handling, self._settings
        )
        granted: Outcome[int] = Outcome()
        self._call_on_loop(self._hold, topic_filter, qos, wanted, granted)
        return await granted

    async def unsubscribe(self, topic_filter: str) -> None:
        """Release what :meth:`subscribe` holds on ``topic_filter`` (its unread backlog is
        reported on ``dropped``). The broker subscription ends (UNSUBSCRIBE) when no
        ``messages()`` reader of the filter remains. Unknown filters are ignored."""
        topic_filter = validate_filter(topic_filter)
        self._call_on_loop(self._release, topic_filter)

    def _add_subscriber(
        self,
        topic_filter: str,
        qos: int,
        wanted: dict[str, Any],
        observer: abc.ObserverBase[Message],
    ) -> None:
        if self._closed:
            observer.on_completed()
            return
        live = self._subscriptions.get(topic_filter)
        conflict = self._conflict(topic_filter, wanted)
        if conflict is not None:
            observer.on_error(conflict)
            return
        due = self._subscriptions.add(topic_filter, qos, observer)
        if live is None:
            sub = self._subscriptions.get(topic_filter)
            assert sub is not None
            for name, value in wanted.items():
                setattr(sub, name, value)
            sub.identifier = next(self._identifiers)
        # What the grace buffer kept for it first (before a local refusal could end it).
        self._release_unmatched(self._grace.expire())
        claimed = self._grace.claim(topic_filter)
        for message in claimed.expired:
            log.info(
                "a kept message on %r expired before %r claimed it", message.topic, topic_filter
            )
            self._dropped.on_next(DroppedMessage(message, DropReason.EXPIRED, self._now()))
        for message in claimed.messages:
            observer.on_next(message)
        held = self._holds.get(topic_filter)
        if held is not None and observer is not held:
            for message in held.take():
                observer.on_next(message)
        if due:
            self._send_due()

    def _hold(
        self, topic_filter: str, qos: int, wanted: dict[str, Any], granted: Outcome[int]
    ) -> None:
        if self._closed:
            settle_error(granted, ConnectionClosedError(f"subscribe({topic_filter!r}): closed"))
            return
        conflict = self._conflict(topic_filter, wanted)
        if conflict is not None:
            settle_error(granted, conflict)
            return
        held = self._holds.get(topic_filter)
        if held is None:
            held = Backlog(
                DEFAULT_BACKLOG,
                alone=lambda: self._alone(topic_filter),
                on_drop=self._report_unread,
                on_refused=lambda error: self._refused(topic_filter, granted, error),
            )
            self._holds[topic_filter] = held
            self._add_subscriber(topic_filter, qos, wanted, held)
        else:
            held.arm()
            due = self._subscriptions.add(topic_filter, qos, held)  # raises the QoS if asked
            self._subscriptions.remove(topic_filter, held)  # the holder counts once
            if due:
                self._send_due()
        sub = self._subscriptions.get(topic_filter)
        if sub is None:  # refused at once (the CONNACK said the broker cannot have it)
            return
        self._settle_or_wait(sub, granted)

    def _refused(self, topic_filter: str, granted: Outcome[int], error: Exception) -> None:
        self._holds.pop(topic_filter, None)
        settle_error(granted, error)

    def _release(self, topic_filter: str) -> None:
        held = self._holds.pop(topic_filter, None)
        if held is None or self._closed:
            return
        for message in held.take():
            self._report_unread(message)
        self._remove_subscriber(topic_filter, held)

    def _conflict(self, topic_filter: str, wanted: dict[str, Any]) -> ValueError | None:
        return _conflict(self._subscriptions.get(topic_filter), wanted)

    def _alone(self, topic_filter: str) -> bool:
        sub = self._subscriptions.get(topic_filter)
        return sub is not None and len(sub.observers) == 1

    def _report_unread(self, message: Message) -> None:
        self._dropped.on_next(DroppedMessage(message, DropReason.UNREAD, self._now()))

    def _remove_subscriber(self, topic_filter: str, observer: abc.ObserverBase[Message]) -> None:
        if self._closed:
            return
        sub = self._subscriptions.get(topic_filter)
        if not self._subscriptions.remove(topic_filter, observer):
            return
        if sub is not None and sub.waiters:  # the last one left before the broker granted it
            waiters, sub.waiters = sub.waiters, []
            error = MqttError(f"unsubscribe({topic_filter!r}) came before the broker granted it")
            for waiter in waiters:
                settle_error(waiter, error)
        self._send_due()

    def _send_due(self) -> None:
        """Send the UNSUBSCRIBEs and SUBSCRIBEs that bring the broker's view to what
        ``messages()`` holds; while offline they wait for the next CONNACK."""
        engine = self._engine
        if engine is None or not engine.link_up:
            return
        filters = self._subscriptions.unsubscribes_due()
        if filters:
            self._subscriptions.unsubscribe_sent(engine.unsubscribe(filters), filters)
        subs = [sub for sub in self._subscriptions.ungranted() if self._broker_allows(sub)]
        if not subs:
            return
        if engine.limits.subscription_identifiers_available:
            # One Subscription Identifier per SUBSCRIBE packet, so one packet per filter.
            for sub in subs:
                mid = engine.subscribe([(sub.topic_filter, sub.options())], sub.identifier)
                self._subscriptions.sent(mid, [sub])
            return
        mid = engine.subscribe([(sub.topic_filter, sub.options()) for sub in subs])
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
        message = message_from_arguments(
            topic,
            payload,
            qos,
            retain,
            properties,
            message_expiry_interval,
            self.broker_limits,
            v311=self._settings.protocol_version == MQTT_3_1_1,
        )
        result: Outcome[PublishResult] = Outcome()
        self._call_on_loop(self._publisher.publish, message, result)
        return result

    # ------------------------------------------------------------------ engine handler

    def on_connack(self, session_present: bool, limits: BrokerLimits) -> None:
        assert self._engine is not None
        reconnected = self._engine.connections > 1  # (not this connection's first CONNACK)
        self._emit(Connected(session_present, str(self._engine.endpoint)))
        self._grace.open_window()
        self._subscriptions.link_established()
        if not session_present:
            self._subscriptions.session_lost()
            if reconnected and self._settings.session_expiry > 0:
                self._emit(SessionLost())
        self._subscriptions.grants_confirmed()
        self._send_due()
        self._publisher.link_established()

    def on_connection_lost(self, disconnect: Disconnect) -> None:
        self._acks.link_lost()
        self._publisher.link_lost(disconnect)

    def on_message(self, message: Message) -> None:
        acks = self._acks
        if not message.qos:
            self._deliver(message)
        elif acks.direct:  # (the common case: nothing to hold, nothing waiting)
            try:
                self._deliver(message)
            finally:
                acks.send(message)
        else:
            hold = acks.received(message)
            try:
                self._deliver(message)
            finally:  # every plain subscriber is done; manual ones hold it until they ack()
                acks.dispatched(hold)

    def _deliver(self, message: Message) -> None:
        if self._subscriptions.dispatch(message):
            return
        self._release_unmatched(self._grace.offer(message))
        if self._grace_timer is None and self._grace.next_expiry is not None:
            assert self._loop is not None
            self._grace_timer = self._loop.call_at(self._grace.next_expiry, self._grace_ended)

    def on_publish_done(self, mid: int, reason_code: int, reason: str) -> None:
        self._publisher.acknowledged(mid, reason_code, reason)

    def on_publishes_written(self, mids: tuple[int, ...]) -> None:
        self._publisher.written(mids)

    def on_publishes_done(self, done: list[tuple[int, int, str]]) -> None:
        self._publisher.acknowledged_all(done)

    def on_publish_uncertain(self, mid: int, reason_code: int, reason: str) -> None:
        self._publisher.uncertain(mid, reason_code, reason)

    def on_suback(self, mid: int, reason_codes: list[tuple[int, str]]) -> None:
        self._subscriptions.acknowledged(mid, reason_codes)

    def on_unsuback(self, mid: int, reason_codes: list[tuple[int, str]]) -> None:
        self._subscriptions.unsubscribe_acknowledged(mid, reason_codes)

    # ------------------------------------------------------------------ unmatched messages

    def _grace_ended(self) -> None:
        self._grace_timer = None
        self._release_unmatched(self._grace.expire())
        expiry = self._grace.next_expiry
        if expiry is not None and not self._closed:
            assert self._loop is not None
            self._grace_timer = self._loop.call_at(expiry, self._grace_ended)

    def _release_unmatched(self, messages: list[Message]) -> None:
        """Account for received messages nobody took: on ``unmatched_messages`` if it has an
        observer, else on ``dropped``; logged either way."""
        if not messages:
            return
        observed = self._unmatched.observed
        grace = self._grace_period
        now = self._now()
        self._unmatched_since_log += len(messages)
        level = logging.INFO if observed else logging.WARNING
        if now - self._unmatched_logged_at < _UNMATCHED_LOG_INTERVAL:
            level = logging.DEBUG
        else:
            self._unmatched_logged_at = now
        log.log(
            level,
            "%d received message(s) (%d since the last report), the first on %r, matched no "
            "messages() subscription and none claimed them within the grace period (%gs after a "
            "CONNACK, at most %d messages / %d bytes): %s",
            len(messages),
            self._unmatched_since_log,
            messages[0].topic,
            grace.seconds,
            grace.max_messages,
            grace.max_bytes,
            "to unmatched_messages" if observed else "nobody observes unmatched_messages, dropped",
        )
        if level != logging.DEBUG:
            self._unmatched_since_log = 0
        for message in messages:
            if observed:
                self._unmatched.on_next(message)
            else:
                self._dropped.on_next(DroppedMessage(message, DropReason.UNMATCHED, self._now()))

    # ------------------------------------------------------------------ plumbing

    def _emit(self, event: LifecycleEvent) -> None:
        log.debug("lifecycle: %s", event)
        self._current_state = next_state(self._current_state, event)
        self._states.on_next(self._current_state)
        self._lifecycle.on_next(event)

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


def _request(
    topic_filter: str,
    qos: int,
    no_local: bool | None,
    retain_as_published: bool | None,
    retain_handling: int | None,
    settings: ConnectionSettings,
) -> tuple[str, int, dict[str, Any]]:
    """A subscription request validated: the filter, the QoS and the options the caller asked
    for (``None``: whatever the live subscription has). MQTT 3.1.1 has none of the options: a
    value other than its fixed behaviour is refused, naming the option."""
    topic_filter = validate_filter(topic_filter)
    qos = check_qos(qos)
    asked: dict[str, Any] = {
        "no_local": no_local,
        "retain_as_published": retain_as_published,
        "retain_handling": retain_handling,
    }
    wanted = {name: value for name, value in asked.items() if value is not None}
    SubscriptionOptions(**wanted)  # type and range checks, naming the option
    if settings.protocol_version == MQTT_3_1_1:
        for name, value in wanted.items():
            if value:  # (False / 0 is what MQTT 3.1.1 does anyway)
                raise ValueError(f"{name}: {MQTT5_NEEDED} subscription options")
    if wanted.get("no_local") and split_shared(topic_filter)[0] is not None:
        raise ValueError(
            f"no_local: not allowed on a shared subscription ({topic_filter!r}; MQTT 5 3.8.3.1)"
        )
    return topic_filter, qos, wanted


def _conflict(live: Subscription | None, wanted: dict[str, Any]) -> ValueError | None:
    """Why ``wanted`` cannot share the live subscription, if it cannot."""
    if live is None:
        return None
    for name, value in wanted.items():
        current = getattr(live, name)
        if current != value:
            return ValueError(
                f"{name}: {live.topic_filter!r} is already subscribed with {name}={current!r}; "
                f"one filter has one set of subscription options (got {name}={value!r}; "
                "leave it unset to share the live subscription)"
            )
    return None


def _settings_of(settings: object, overrides: dict[str, Any]) -> ConnectionSettings:
    """The settings ``Connection(settings, **overrides)`` means."""
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(ConnectionSettings)})
    if unknown:
        raise TypeError(f"{unknown[0]}: not a ConnectionSettings field (nor a Connection argument)")
    if isinstance(settings, str):
        return ConnectionSettings.from_url(settings, **overrides)
    if not isinstance(settings, ConnectionSettings):
        raise TypeError(
            "settings: must be a ConnectionSettings or an mqtt:// URL, "
            f"got {type(settings).__name__}"
        )
    return dataclasses.replace(settings, **overrides) if overrides else settings


def _disconnect_of(event: LifecycleEvent) -> Observable[Disconnect]:
    if isinstance(event, Disconnected | ConnectFailed):
        return reactivex.just(event.disconnect)
    return reactivex.empty()


class _Unsubscribe(abc.DisposableBase):
    """Ends one ``messages()`` subscriber (on the connection's loop; a second call finds it
    gone). One small object per subscriber: a process may hold thousands."""

    __slots__ = ("_connection", "_observer", "_topic_filter")

    def __init__(
        self, connection: Connection, topic_filter: str, observer: abc.ObserverBase[Message]
    ) -> None:
        self._connection = connection
        self._topic_filter = topic_filter
        self._observer = observer

    def dispose(self) -> None:
        connection = self._connection
        connection._call_on_loop(  # noqa: SLF001  (the connection's own subscriber)
            connection._remove_subscriber,  # noqa: SLF001
            self._topic_filter,
            self._observer,
        )
