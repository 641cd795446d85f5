"""``Engine``: one connection's life as a state machine (the table in ``_phase``) over one paho
client. It reads paho only as events from the adapter (``_paho_link``) and never imports paho:
socket -> paho adapter -> engine -> its handler (the connection)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
from collections.abc import Callable
from typing import Protocol

import reactivex
from reactivex import Observable, abc

from .._outcome import Outcome
from ..broker_limits import BrokerLimits
from ..errors import NotConnectedError
from ..lifecycle import Connected, Disconnect, DisconnectSource
from ..message import Message
from ..settings import ConnectionSettings, Endpoint
from ..settings._protocol import MQTT_3_1_1
from ..subscription_options import SubscriptionOptions
from ._adapter_events import (
    AdapterEvent,
    ConnackHandled,
    ConnackReceived,
    LinkClosed,
    MessageReceived,
    PacketRefused,
    PublishCompleted,
    PublishesAcknowledged,
    PublishesWritten,
    PubrecReceived,
    SocketFailed,
    SubackReceived,
    UnsubackReceived,
)
from ._attempt import AttemptEnded, AttemptWatcher
from ._auth_driver import AuthDriver
from ._disconnects import (
    KEEP_ALIVE_TIMEOUT,
    PACKET_ID_NOT_FOUND,
    UNSPECIFIED_ERROR,
    connection_end,
    open_failure,
)
from ._linger import LINGER_SECONDS, Linger
from ._paho_link import PahoLink
from ._phase import Phase, checked
from ._seam_check import check_paho_seams
from ._socket_pump import SocketPump
from ._sockets import open_socket
from ._watchdog import KeepAliveWatchdog

log = logging.getLogger("rxmqtt.engine")


class EngineHandler(Protocol):
    """What the engine reports about the link's traffic; every call happens on the loop's thread.
    (How each attempt ends is told by its observable, :meth:`Engine.attempt`.)"""

    def on_connack(self, session_present: bool, limits: BrokerLimits) -> None:
        """CONNACK success, once paho re-sent the session's packets; the attempt observable
        emits ``Connected`` right after this returns."""
        ...

    def on_connection_lost(self, disconnect: Disconnect) -> None:
        """An established link ended; the attempt observable errors after this returns."""
        ...

    def on_message(self, message: Message) -> None: ...

    def on_publish_done(self, mid: int, reason_code: int, reason: str) -> None: ...

    def on_publishes_written(self, mids: tuple[int, ...]) -> None:
        """QoS 0 publishes written to the socket, in order (their outcome: success)."""
        ...

    def on_publishes_done(self, done: list[tuple[int, int, str]]) -> None:
        """Several ``on_publish_done`` at once, in order: ``(mid, reason_code, reason)``."""
        ...

    def on_publish_uncertain(self, mid: int, reason_code: int, reason: str) -> None:
        """A QoS 2 exchange ended without the broker confirming it holds the message (PUBCOMP
        with a failure code, or the session lost while the PUBREL was owed)."""
        ...

    def on_suback(self, mid: int, reason_codes: list[tuple[int, str]]) -> None: ...

    def on_unsuback(self, mid: int, reason_codes: list[tuple[int, str]]) -> None: ...


class Engine:
    """One paho client for the life of a connection, one socket per attempt.

    Keeping one paho client across attempts keeps the MQTT session state (unacknowledged QoS 1/2
    messages, the QoS 2 handshake) so they are re-sent with DUP on the next connection, as MQTT 5
    requires.
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        loop: asyncio.AbstractEventLoop,
        handler: EngineHandler,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        check_paho_seams()
        self._settings = settings
        self._loop = loop
        self._handler = handler
        self._clock = clock or loop.time
        self._v311 = settings.protocol_version == MQTT_3_1_1
        """MQTT 3.1.1: a reason code only in a refused CONNACK (see ``_as_spoken``)."""
        self._paho = PahoLink(settings)
        self._auth = AuthDriver(
            settings.enhanced_authenticator(),
            send=self._paho.send_auth,
            abort=self._auth_abort,
            call_later=loop.call_later,
            timeout=settings.connect_timeout,
        )
        self._watchdog = KeepAliveWatchdog(
            loop.call_later,
            self._clock,
            self._paho.housekeeping,
            self._keep_alive_expired,
            housekeeping_due=self._paho.keepalive_check_due,
            ping_sent_at=self._paho.ping_sent_at,
        )
        self._linger = Linger(loop)
        self._pump = SocketPump(
            loop, self._paho, heard=self._watchdog.heard, after_close=self._linger.socket_closed
        )
        self._paho.wire(events=self._on_event, sockets=self._pump, auth=self._auth.received)

        self._phase = Phase.IDLE
        self._generation = 0
        """Counts attempts and their ends: a late callback of an earlier attempt does nothing."""
        self._open_task: asyncio.Task[None] | None = None
        self._connack_timer: asyncio.TimerHandle | None = None
        self._abort_reason: Disconnect | None = None
        """Why the link is ending, when we know better than paho's on_disconnect will say."""
        self._socket_error: OSError | None = None
        self._pubrec_codes: dict[int, tuple[int, str]] = {}
        """The PUBREC reason code of each QoS 2 publish (paho keeps only whether it failed)."""
        self._orphans: tuple[int, ...] | None = None
        """QoS 2 packet ids the CONNACK orphaned, reported once paho finished the CONNACK."""
        self._closing = False
        self._endpoint: Endpoint | None = None
        self._watcher: AttemptWatcher | None = None
        """Who subscribed to the attempt under way (see ``attempt``)."""
        self.connections = 0
        """How many attempts reached CONNACK success (over the engine's life)."""
        self.limits = BrokerLimits()
        self.session_present = False
        self._isolating = False

    # ----------------------------------------------------------------- public surface

    @property
    def phase(self) -> Phase:
        """Where the current attempt is (see ``_phase.TRANSITIONS``)."""
        return self._phase

    @property
    def link_up(self) -> bool:
        """A CONNACK accepted the current attempt and the link has not been lost since."""
        return self._phase is Phase.CONNECTED

    @property
    def receive_maximum(self) -> int:
        """How many QoS 1/2 publishes the broker accepts unacknowledged (its Receive Maximum)."""
        return self.limits.receive_maximum

    @property
    def attempt_in_progress(self) -> bool:
        """An attempt is opening the socket or waiting for CONNACK."""
        return self._phase in (Phase.OPENING, Phase.AWAITING_CONNACK)

    @property
    def endpoint(self) -> Endpoint | None:
        """The endpoint of the current or last attempt."""
        return self._endpoint

    def attempt(self, endpoint: Endpoint, *, clean_start: bool) -> Observable[Connected]:
        """One attempt at ``endpoint``, started on subscription: emits ``Connected`` on CONNACK
        success, then errors with :class:`AttemptEnded` when the attempt fails or its link is
        lost. The end is delivered on a later loop iteration, never from inside the engine, so a
        subscriber may start the next attempt from it. Unsubscribing does not close anything."""

        def subscribe(
            observer: abc.ObserverBase[Connected], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            return self.watch_new_attempt(observer, endpoint, clean_start=clean_start)

        return reactivex.create(subscribe)

    def watch_new_attempt(
        self, observer: abc.ObserverBase[Connected], endpoint: Endpoint, *, clean_start: bool
    ) -> abc.DisposableBase:
        """What subscribing to :meth:`attempt` does, for an observer that is no Rx pipeline
        (the reconnect loop's round: it watches an attempt for the connection's whole life, and
        an observable and its subscription are a dozen objects more per connection)."""
        disposable = self._watch(observer)
        self._start_attempt(endpoint, clean_start=clean_start)
        return disposable

    def current_attempt(self) -> Observable[Connected]:
        """The attempt under way, as :meth:`attempt` reports it (``Connected`` at once when its
        link is up): how a new subscriber takes over without a new attempt."""

        def subscribe(
            observer: abc.ObserverBase[Connected], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            return self.watch_current_attempt(observer)

        return reactivex.create(subscribe)

    def watch_current_attempt(self, observer: abc.ObserverBase[Connected]) -> abc.DisposableBase:
        """What subscribing to :meth:`current_attempt` does (see :meth:`watch_new_attempt`);
        ``RuntimeError`` when no attempt is under way."""
        if self._phase is Phase.IDLE:
            raise RuntimeError("engine: no attempt under way to watch")
        disposable = self._watch(observer)
        if self._phase is Phase.CONNECTED:
            observer.on_next(self._connected_event())
        return disposable

    def _watch(self, observer: abc.ObserverBase[Connected]) -> abc.DisposableBase:
        if self._watcher is not None:
            self._watcher.disposed = True  # a new subscriber takes over
        watcher = self._watcher = AttemptWatcher(observer)
        return _Unwatch(self, watcher)

    def _unwatch(self, watcher: AttemptWatcher) -> None:
        watcher.disposed = True
        if self._watcher is watcher:
            self._watcher = None

    def _connected_event(self) -> Connected:
        return Connected(self.session_present, str(self._endpoint))

    def _attempt_ended(self, disconnect: Disconnect, *, was_connected: bool) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            error = AttemptEnded(disconnect, was_connected=was_connected)
            self._loop.call_soon(watcher.ended, error)

    def _start_attempt(self, endpoint: Endpoint, *, clean_start: bool) -> None:
        """Start an attempt (see ``attempt``)."""
        self._move(Phase.OPENING)
        self._generation += 1
        self._closing = False
        self._abort_reason = None
        self._endpoint = endpoint
        self._open_task = self._loop.create_task(
            self._open(self._generation, endpoint, clean_start),
            name=f"rxmqtt-connect-{endpoint}",
        )

    def close(self, *, send_disconnect: bool = True, end_session: bool = False) -> None:
        """End the current attempt or connection without reporting it (the owner knows why).

        With ``send_disconnect`` a DISCONNECT (reason 0, so the broker discards the Will) is sent
        first when connected; ``end_session`` adds Session Expiry Interval 0 to it, so the broker
        discards the session at once instead of keeping it for the next start.
        """
        self._generation += 1
        self._closing = True
        self._watcher = None  # (the owner knows why: nothing is reported)
        self._cancel_timers()
        if self._open_task is not None and not self._open_task.done():
            self._open_task.cancel()
        self._open_task = None
        phase = self._phase
        if phase is not Phase.IDLE:
            self._move(Phase.IDLE)
        self._auth.link_ended(None)
        if phase is Phase.CONNECTED and send_disconnect:
            # paho closes the socket once DISCONNECT is written: that close lingers.
            with self._linger.disconnecting():
                try:
                    self._paho.disconnect(end_session=end_session)
                except Exception:
                    log.debug("DISCONNECT could not be written", exc_info=True)
        self._pump.drop()

    async def wait_closed(self, timeout: float = LINGER_SECONDS) -> None:
        """Wait until a graceful close has finished draining (at most ``timeout``)."""
        await self._linger.wait(timeout)

    def abort(self, disconnect: Disconnect) -> None:
        """Drop the link without DISCONNECT (the broker will publish the Will) and report it."""
        if self._phase is Phase.IDLE:
            return
        self._abort_reason = disconnect
        if self._phase is Phase.OPENING:
            self._finish_failed(disconnect)
            return
        self._pump.drop()  # (paho reports the end as LinkClosed, usually)
        if self.link_up or self.attempt_in_progress:  # paho closed it without reporting it
            self._report_end(disconnect)

    def reauthenticate(self) -> Outcome[int]:
        """Re-authenticate the link that is up (MQTT 5 AUTH Re-authenticate), keeping it:
        resolves with the Continue authentication rounds it took, or fails with
        ``ReauthenticationError`` (not connected, the authenticator failed, or the link ended
        on the way; a server that refuses ends it with DISCONNECT)."""
        return self._auth.reauthenticate()

    def _auth_abort(self, reason_code: int, reason: str) -> None:
        """The client gives up on an enhanced-authentication exchange: DISCONNECT with
        ``reason_code``, then the link ends (reported as the client's doing)."""
        disconnect = Disconnect(reason_code, reason, DisconnectSource.CLIENT, at=self._clock())
        self._paho.send_disconnect_now(reason_code)
        self.abort(disconnect)

    def publish(self, message: Message) -> int:
        """Hand a message to paho; returns the packet id used to match its acknowledgement."""
        if self._phase is not Phase.CONNECTED:
            raise NotConnectedError("publish while not connected")
        return self._paho.publish(message)

    def subscribe(
        self, filters: list[tuple[str, SubscriptionOptions]], identifier: int | None = None
    ) -> int:
        """Send one SUBSCRIBE for ``(filter, options)`` pairs, with a Subscription Identifier
        when ``identifier`` is given; returns its packet id."""
        if self._phase is not Phase.CONNECTED:
            raise NotConnectedError("subscribe while not connected")
        return self._paho.subscribe(filters, identifier)

    def unsubscribe(self, filters: list[str]) -> int:
        """Send one UNSUBSCRIBE; returns its packet id."""
        if self._phase is not Phase.CONNECTED:
            raise NotConnectedError("unsubscribe while not connected")
        return self._paho.unsubscribe(filters)

    def manual_acks(self, on: bool) -> None:
        """Switch manual acknowledgement of received QoS 1/2 messages on (the handler calls
        :meth:`ack` for each, with the packet id its ``Message`` carries) or off (acknowledged
        as soon as ``on_message`` returns)."""
        self._paho.manual_acks(on)

    def ack(self, mid: int, qos: int) -> None:
        """Send the PUBACK (QoS 1) or PUBREC (QoS 2) of a received message, under manual
        acknowledgement. Nothing while the link is down: the broker re-sends the message."""
        if self._phase is Phase.CONNECTED:
            self._paho.ack(mid, qos)

    def in_flight_mids(self) -> list[int]:
        """Packet ids of publishes paho still holds (unacknowledged or waiting for the window)."""
        return self._paho.held_mids()

    def publishes_on_the_wire(self) -> list[int]:
        """Packet ids of the QoS 1/2 publishes written (or being written) and not yet
        acknowledged, oldest first: the ones a broker's DISCONNECT can be about."""
        return self._paho.mids_awaiting_ack()

    def isolate_publishes(self) -> None:
        """Send QoS 1/2 publishes one at a time from the next connection on (each waits for the
        previous one's ack), until none is left waiting: then a DISCONNECT about a PUBLISH can
        only be about the one in flight."""
        self._isolating = True

    def forget_publish(self, mid: int) -> None:
        """Stop re-sending one publish: the owner gave up on it (the broker refuses it)."""
        if self._isolating:
            self._end_isolation_after(mid)
        self._paho.forget_message(mid)
        self._pubrec_codes.pop(mid, None)

    def forget_in_flight(self) -> None:
        """Drop every message paho holds (used when the connection closes for good)."""
        self._paho.forget_all_messages()
        self._pubrec_codes.clear()

    # ----------------------------------------------------------------- opening

    async def _open(self, generation: int, endpoint: Endpoint, clean_start: bool) -> None:
        settings = self._settings
        try:
            credentials = settings.credentials()
            auth = self._auth.connect_auth()
        except Exception as exc:
            failure = self._ended(f"credential provider failed: {exc}", DisconnectSource.CLIENT)
            self._finish_failed(failure, generation)
            return
        try:
            sock = await asyncio.wait_for(
                open_socket(self._loop, settings, endpoint), timeout=settings.connect_timeout
            )
        except asyncio.CancelledError:
            raise
        except (OSError, ssl.SSLError, ValueError) as exc:  # (TimeoutError is an OSError)
            failure = open_failure(exc, str(endpoint), settings.connect_timeout, self._clock())
            self._finish_failed(failure, generation)
            return
        if generation != self._generation:
            sock.close()
            return
        self._move(Phase.AWAITING_CONNACK)
        self._socket_error = None
        self._auth.connect_sent()
        try:
            self._paho.connect(
                sock,
                endpoint,
                clean_start=clean_start,
                credentials=credentials,
                auth=auth,
                one_at_a_time=self._isolating,
            )
        except Exception as exc:
            self._finish_failed(
                self._ended(
                    f"sending CONNECT to {endpoint} failed: {exc}", DisconnectSource.NETWORK
                )
            )
            return
        self._connack_timer = self._loop.call_later(
            self._settings.connect_timeout, self._connack_timed_out, self._generation
        )

    def _connack_timed_out(self, generation: int) -> None:
        if generation != self._generation or self._phase is not Phase.AWAITING_CONNACK:
            return
        timeout = self._settings.connect_timeout
        self.abort(self._ended(f"no CONNACK within {timeout}s", DisconnectSource.CLIENT))

    def _finish_failed(self, disconnect: Disconnect, generation: int | None = None) -> None:
        if generation is not None and generation != self._generation:
            return
        disconnect = self._as_spoken(disconnect)
        self._generation += 1
        self._cancel_timers()
        if self._open_task is not None and self._open_task is not asyncio.current_task():
            self._open_task.cancel()
        self._open_task = None
        self._move(Phase.IDLE)
        self._auth.link_ended(disconnect)
        self._pump.drop()
        self._attempt_ended(disconnect, was_connected=False)

    # ----------------------------------------------------------------- timers

    def _cancel_timers(self) -> None:
        if self._connack_timer is not None:
            self._connack_timer.cancel()
            self._connack_timer = None
        self._watchdog.stop()

    def _keep_alive_expired(self, silent_for: float, keep_alive: float) -> None:
        self.abort(
            self._ended(
                f"Keep alive timeout: nothing from the broker for {silent_for:.1f}s "
                f"(keep_alive {keep_alive}s)",
                DisconnectSource.KEEPALIVE,
                KEEP_ALIVE_TIMEOUT,
            )
        )

    def _ended(
        self, reason: str, source: DisconnectSource, code: int = UNSPECIFIED_ERROR
    ) -> Disconnect:
        """An end the engine itself found (no packet says it), timed now."""
        return Disconnect(code, reason, source, at=self._clock())

    def _move(self, phase: Phase) -> None:
        """Change phase along the table (anything else is a bug, raised as ``PhaseError``)."""
        self._phase = checked(self._phase, phase)

    # ----------------------------------------------------------------- the adapter's events

    def _on_event(self, event: AdapterEvent) -> None:
        """Everything paho and its adapter report, one event at a time (see _adapter_events);
        the engine's handler never raises into paho's packet handling."""
        try:
            match event:
                case MessageReceived(message):
                    self._handler.on_message(message)
                case PublishesWritten(mids):
                    self._handler.on_publishes_written(mids)
                case PublishCompleted():
                    self._publish_completed(event)
                case PublishesAcknowledged(acks):
                    done: list[tuple[int, int, str]] = []
                    for ack in acks:
                        self._publish_completed(ack, done)
                    if done:
                        self._handler.on_publishes_done(done)
                case PubrecReceived(mid, code, reason):
                    self._pubrec_codes[mid] = (code, reason)
                case UnsubackReceived(mid, codes):
                    self._handler.on_unsuback(mid, list(codes))
                case SubackReceived(mid, codes):
                    self._handler.on_suback(mid, list(codes))
                case ConnackReceived():
                    self._connack_received(event)
                case ConnackHandled():
                    self._connack_handled()
                case LinkClosed():
                    self._link_closed(event)
                case PacketRefused(code, reason, source):
                    if self._abort_reason is None:
                        self._abort_reason = self._ended(reason, source, code)
                case SocketFailed(error):
                    self._socket_error = error
        except Exception:
            log.exception("rxmqtt engine: handling %s failed", type(event).__name__)

    def _connack_received(self, connack: ConnackReceived) -> None:
        if self._phase is not Phase.AWAITING_CONNACK:
            self._report_orphans(connack.orphans)
            return
        if self._connack_timer is not None:
            self._connack_timer.cancel()
            self._connack_timer = None
        if not connack.accepted:
            self._abort_reason = Disconnect(
                connack.reason_code,
                connack.reason,
                DisconnectSource.SERVER,
                at=self._clock(),
                server_reference=connack.server_reference,
            )
            return  # paho closes the socket next and reports it as LinkClosed
        self._auth.connack_accepted()
        self.limits = connack.limits
        self.session_present = connack.session_present
        for mid in connack.orphans:
            self._pubrec_codes.pop(mid, None)
        self._move(Phase.CONNECTED)
        self.connections += 1
        server_keep_alive = self.limits.server_keep_alive
        self._watchdog.start(
            self._settings.keep_alive if server_keep_alive is None else server_keep_alive
        )
        # Reported once paho has re-sent the session's in-flight messages: ConnackHandled.
        self._orphans = connack.orphans

    def _connack_handled(self) -> None:
        orphans, self._orphans = self._orphans, None
        if orphans is None:
            return
        if self._phase is Phase.CONNECTED:
            self._handler.on_connack(self.session_present, self.limits)
            watcher = self._watcher
            if watcher is not None and self._phase is Phase.CONNECTED:
                watcher.connected(self._connected_event())
        self._report_orphans(orphans)  # (gone from paho: reported even if the link died)

    def _report_orphans(self, orphans: tuple[int, ...]) -> None:
        for mid in orphans:
            self._handler.on_publish_uncertain(
                mid,
                PACKET_ID_NOT_FOUND,
                "the broker lost the session (CONNACK session_present 0) while the QoS 2 "
                "exchange waited for its PUBCOMP: the broker no longer knows the message, "
                "so it may not have been delivered",
            )

    def _link_closed(self, closed: LinkClosed) -> None:
        if self._phase is Phase.IDLE or self._closing:
            return
        self._report_end(
            self._abort_reason or connection_end(closed, self._socket_error, self._clock())
        )

    def _report_end(self, disconnect: Disconnect) -> None:
        """Report the end of the current attempt or connection, exactly once."""
        disconnect = self._as_spoken(disconnect)
        phase = self._phase
        self._generation += 1
        self._cancel_timers()
        self._move(Phase.IDLE)
        self._abort_reason = None
        self._orphans = None
        self._auth.link_ended(disconnect)
        if phase is Phase.CONNECTED:
            self._handler.on_connection_lost(disconnect)
        self._attempt_ended(disconnect, was_connected=phase is Phase.CONNECTED)

    def _as_spoken(self, disconnect: Disconnect) -> Disconnect:
        """``disconnect`` as the protocol told it: MQTT 3.1.1 carries a reason code only in a
        refused CONNACK (the broker's, source SERVER), so every other end has none."""
        if not self._v311 or disconnect.source is DisconnectSource.SERVER:
            return disconnect
        return dataclasses.replace(disconnect, reason_code=None)

    def _publish_completed(
        self, done: PublishCompleted, batch: list[tuple[int, int, str]] | None = None
    ) -> None:
        """One publish paho is done with: to the handler, or (``batch``) collected for it."""
        mid = done.mid
        pubrec = self._pubrec_codes.pop(mid, None)
        if self._isolating:
            self._end_isolation_after(mid)
        accepted = pubrec is None or pubrec[0] < 0x80
        if done.reason_code >= 0x80 and accepted and done.qos == 2:
            # a PUBREC accepted it, the PUBCOMP failed
            self._handler.on_publish_uncertain(
                mid,
                done.reason_code,
                f"{done.reason}: the broker accepted the message (PUBREC) but its PUBCOMP "
                "reports a failure, so it may not have been delivered",
            )
            return
        code, reason = pubrec if pubrec is not None else (done.reason_code, done.reason)
        if batch is None:
            self._handler.on_publish_done(mid, code, reason)
        else:
            batch.append((mid, code, reason))

    def _end_isolation_after(self, mid: int) -> None:
        """Back to sending publishes freely once nothing waits behind the one acknowledged."""
        if not self._paho.any_held_back(besides=mid):
            self._isolating = False
            self._paho.one_publish_at_a_time(False)


class _Unwatch(abc.DisposableBase):
    """Ends one watch of the attempt under way (idempotent; one small object per watch)."""

    __slots__ = ("_engine", "_watcher")

    def __init__(self, engine: Engine, watcher: AttemptWatcher) -> None:
        self._engine = engine
        self._watcher = watcher

    def dispose(self) -> None:
        self._engine._unwatch(self._watcher)  # noqa: SLF001  (the engine's own watch)
