"""``Engine``: one paho client for a connection's life, driven by the loop's socket callbacks."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import select
import socket
import ssl
from collections.abc import Callable
from typing import Any, Protocol

import paho.mqtt.client as paho
import reactivex
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from .._outcome import Outcome
from ..broker_limits import V311_LIMITS, BrokerLimits
from ..errors import NotConnectedError
from ..lifecycle import Connected, Disconnect, DisconnectSource
from ..message import NO_PROPERTIES, Message, PublishProperties
from ..settings import ConnectionSettings, Endpoint
from ..settings._protocol import MQTT_3_1_1
from ..subscription_options import SubscriptionOptions
from ._adapter_events import (
    AdapterEvent,
    ConnackHandled,
    PacketRefused,
    PubrecReceived,
    SocketFailed,
)
from ._attempt import AttemptEnded, AttemptWatcher
from ._auth_driver import AuthDriver
from ._convert import (
    KEEP_ALIVE_TIMEOUT,
    PACKET_ID_NOT_FOUND,
    UNSPECIFIED_ERROR,
    _from_paho_properties,
    _limits_from,
    _properties,
    _to_paho_properties,
    connect_properties,
)
from ._disconnects import connection_end, open_failure
from ._linger import LINGER_SECONDS, Linger
from ._paho_client import PAHO_VERSION_TEXT, _PahoClient
from ._phase import Phase, checked
from ._seam_check import METHODS as SEAM_METHODS
from ._seam_check import missing_paho_seams
from ._sockets import OpenedSocket, open_socket
from ._watchdog import KeepAliveWatchdog

log = logging.getLogger("rxmqtt.engine")

_MAX_READS_PER_EVENT = 256
"""Packets read per readiness event before yielding to the loop, so one busy socket cannot
starve everything else on it."""


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

    def on_publish_uncertain(self, mid: int, reason_code: int, reason: str) -> None:
        """A QoS 2 exchange ended without the broker confirming it holds the message (PUBCOMP
        with a failure code, or the session lost while the PUBREL was owed)."""
        ...

    def on_suback(self, mid: int, reason_codes: list[tuple[int, str]]) -> None: ...

    def on_unsuback(self, mid: int, reason_codes: list[tuple[int, str]]) -> None: ...


def _logged(callback: Callable[..., None]) -> Callable[..., None]:
    """paho swallows exceptions raised in callbacks; log them with their traceback instead of
    letting a bug hang a connection silently."""

    def call(*args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("rxmqtt engine: %s failed", callback.__name__)

    return call


_verified_paho: tuple[object, ...] | None = None
"""The paho methods the seam check last passed with (see ``_check_paho_seams``)."""


def _check_paho_seams() -> None:
    """Refuse a paho that lacks what the adapter relies on. The full check (signatures, a probe
    client) costs about 2 ms: it runs once per paho, not once per connection."""
    global _verified_paho  # (a process-wide cache of one verdict)
    paho_now = tuple(getattr(paho.Client, name, None) for name in SEAM_METHODS)
    if paho_now == _verified_paho:
        return
    missing = missing_paho_seams()
    if missing:
        raise RuntimeError(
            f"rxmqtt.engine relies on paho-mqtt internals that paho-mqtt {PAHO_VERSION_TEXT} "
            f"does not have: {'; '.join(missing)}. Install a paho-mqtt release rxmqtt "
            "supports (see its pyproject.toml)"
        )
    _verified_paho = paho_now


def _has_buffered_input(sock: Any) -> bool:
    pending = getattr(sock, "pending", None)  # TLS and WebSocket streams buffer input
    if pending is not None and pending() > 0:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return bool(readable)


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
        _check_paho_seams()
        self._settings = settings
        self._loop = loop
        self._handler = handler
        self._clock = clock or loop.time
        self._v311 = settings.protocol_version == MQTT_3_1_1
        """MQTT 3.1.1: no properties, and Clean Session (``settings.clean_start``) on every
        attempt: with 1 the broker never keeps a session to resume, so asking for one on a
        reconnect would only leave a session behind that nothing ends."""
        self._client = _PahoClient(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=paho.MQTTv311 if self._v311 else paho.MQTTv5,
            clean_session=settings.clean_start if self._v311 else None,
            events=self._on_adapter_event,
        )
        self._client.suppress_exceptions = True
        self._client.max_queued_messages_set(0)
        # The Connection keeps the broker's Receive Maximum window itself (it queues beyond it).
        self._client.max_inflight_messages_set(0)
        client = self._client
        client.on_socket_open = _logged(self._on_socket_open)
        client.on_socket_close = _logged(self._on_socket_close)
        client.on_socket_register_write = _logged(self._on_register_write)
        client.on_socket_unregister_write = _logged(self._on_unregister_write)
        client.on_connect = _logged(self._on_connect)
        client.on_disconnect = _logged(self._on_disconnect)
        client.on_message = _logged(self._on_message)
        client.publish_sink = self._on_publish_packet
        self._auth = AuthDriver(
            settings.enhanced_authenticator(),
            send=client.send_auth,
            abort=self._auth_abort,
            call_later=loop.call_later,
            timeout=settings.connect_timeout,
        )
        client.auth_sink = self._auth.received
        client.on_publish = _logged(self._on_publish)
        client.on_subscribe = _logged(self._on_subscribe)
        client.on_unsubscribe = _logged(self._on_unsubscribe)
        if settings.will is not None:
            will = settings.will
            will_props = _to_paho_properties(will.properties, PacketTypes.WILLMESSAGE)
            if will.delay_interval:
                will_props = will_props or _properties(PacketTypes.WILLMESSAGE)
                will_props.WillDelayInterval = will.delay_interval
            self._client.will_set(will.topic, will.payload, will.qos, will.retain, will_props)

        self._phase = Phase.IDLE
        self._generation = 0
        """Counts attempts and their ends: a late callback of an earlier attempt does nothing."""
        self._open_task: asyncio.Task[None] | None = None
        self._connack_timer: asyncio.TimerHandle | None = None
        self._watchdog = KeepAliveWatchdog(
            self._loop.call_later,
            self._clock,
            self._client.loop_misc,
            self._keep_alive_expired,
            housekeeping_due=self._client.keepalive_check_due,
        )
        self._linger = Linger(loop)
        self._abort_reason: Disconnect | None = None
        """Why the link is ending, when we know better than paho's on_disconnect will say."""
        self._socket_error: OSError | None = None
        self._pubrec_codes: dict[int, tuple[int, str]] = {}
        """The PUBREC reason code of each QoS 2 publish (paho keeps only whether it failed)."""
        self._orphans: list[int] | None = None
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
            disposable = self._watch(observer)
            self._start_attempt(endpoint, clean_start=clean_start)
            return disposable

        return reactivex.create(subscribe)

    def current_attempt(self) -> Observable[Connected]:
        """The attempt under way, as :meth:`attempt` reports it (``Connected`` at once when its
        link is up): how a new subscriber takes over without a new attempt."""

        def subscribe(
            observer: abc.ObserverBase[Connected], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            if self._phase is Phase.IDLE:
                raise RuntimeError("engine: no attempt under way to watch")
            disposable = self._watch(observer)
            if self._phase is Phase.CONNECTED:
                observer.on_next(self._connected_event())
            return disposable

        return reactivex.create(subscribe)

    def _watch(self, observer: abc.ObserverBase[Connected]) -> abc.DisposableBase:
        if self._watcher is not None:
            self._watcher.disposed = True  # a new subscriber takes over
        watcher = self._watcher = AttemptWatcher(observer)

        def dispose() -> None:
            watcher.disposed = True
            if self._watcher is watcher:
                self._watcher = None

        return Disposable(dispose)

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
            properties = None
            if end_session:
                properties = _properties(PacketTypes.DISCONNECT)
                properties.SessionExpiryInterval = 0
            # paho closes the socket once DISCONNECT is written: that close lingers.
            with self._linger.disconnecting():
                try:
                    self._client.disconnect(properties=properties)
                    self._client.loop_write()
                except Exception:
                    log.debug("DISCONNECT could not be written", exc_info=True)
        self._drop_socket()

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
        self._drop_socket()  # (paho reports the end through _on_disconnect, usually)
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
        self._client.send_disconnect_now(reason_code)
        self.abort(disconnect)

    def publish(self, message: Message) -> int:
        """Hand a message to paho; returns the packet id used to match its acknowledgement."""
        if self._phase is not Phase.CONNECTED:
            raise NotConnectedError("publish while not connected")
        properties = _to_paho_properties(message.properties, PacketTypes.PUBLISH)
        if message.qos == 0 and properties is None:
            mid = self._client.publish_plain_qos0(message.topic, message.payload, message.retain)
            if mid is not None:
                return mid
        info = self._client.publish(
            message.topic, message.payload, message.qos, message.retain, properties
        )
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            raise NotConnectedError(f"paho refused publish: {paho.error_string(info.rc)}")
        return int(info.mid)

    def subscribe(
        self, filters: list[tuple[str, SubscriptionOptions]], identifier: int | None = None
    ) -> int:
        """Send one SUBSCRIBE for ``(filter, options)`` pairs, with a Subscription Identifier
        when ``identifier`` is given; returns its packet id."""
        if self._phase is not Phase.CONNECTED:
            raise NotConnectedError("subscribe while not connected")
        properties = None
        if identifier is not None:
            properties = _properties(PacketTypes.SUBSCRIBE)
            properties.SubscriptionIdentifier = identifier
        if self._v311:  # a QoS per filter: the other options are MQTT 5's
            rc, mid = self._client.subscribe([(f, options.qos) for f, options in filters])
        else:
            rc, mid = self._client.subscribe(
                [
                    (
                        topic_filter,
                        SubscribeOptions(
                            qos=options.qos,
                            noLocal=options.no_local,
                            retainAsPublished=options.retain_as_published,
                            retainHandling=options.retain_handling,
                        ),
                    )
                    for topic_filter, options in filters
                ],
                properties=properties,
            )
        if rc != paho.MQTT_ERR_SUCCESS or mid is None:
            raise NotConnectedError(f"paho refused subscribe: {paho.error_string(rc)}")
        return int(mid)

    def unsubscribe(self, filters: list[str]) -> int:
        """Send one UNSUBSCRIBE; returns its packet id."""
        if self._phase is not Phase.CONNECTED:
            raise NotConnectedError("unsubscribe while not connected")
        rc, mid = self._client.unsubscribe(filters)
        if rc != paho.MQTT_ERR_SUCCESS or mid is None:
            raise NotConnectedError(f"paho refused unsubscribe: {paho.error_string(rc)}")
        return int(mid)

    def manual_acks(self, on: bool) -> None:
        """Switch manual acknowledgement of received QoS 1/2 messages on (the handler calls
        :meth:`ack` for each, with the packet id its ``Message`` carries) or off (acknowledged
        as soon as ``on_message`` returns)."""
        self._client.manual_ack_set(on)

    def ack(self, mid: int, qos: int) -> None:
        """Send the PUBACK (QoS 1) or PUBREC (QoS 2) of a received message, under manual
        acknowledgement. Nothing while the link is down: the broker re-sends the message."""
        if self._phase is Phase.CONNECTED:
            self._client.acknowledge(mid, qos)

    def in_flight_mids(self) -> list[int]:
        """Packet ids of publishes paho still holds (unacknowledged or waiting for the window)."""
        return self._client.held_mids()

    def publishes_on_the_wire(self) -> list[int]:
        """Packet ids of the QoS 1/2 publishes written (or being written) and not yet
        acknowledged, oldest first: the ones a broker's DISCONNECT can be about."""
        return self._client.mids_awaiting_ack()

    def isolate_publishes(self) -> None:
        """Send QoS 1/2 publishes one at a time from the next connection on (each waits for the
        previous one's ack), until none is left waiting: then a DISCONNECT about a PUBLISH can
        only be about the one in flight."""
        self._isolating = True

    def forget_publish(self, mid: int) -> None:
        """Stop re-sending one publish: the owner gave up on it (the broker refuses it)."""
        if self._isolating:
            self._end_isolation_after(mid)
        self._client.forget_message(mid)
        self._pubrec_codes.pop(mid, None)

    def forget_in_flight(self) -> None:
        """Drop every message paho holds (used when the connection closes for good)."""
        self._client.forget_all_messages()
        self._pubrec_codes.clear()

    # ----------------------------------------------------------------- opening

    async def _open(self, generation: int, endpoint: Endpoint, clean_start: bool) -> None:
        settings = self._settings
        try:
            username, password = settings.credentials()
            auth = self._auth.connect_auth()
        except Exception as exc:
            self._finish_failed(
                Disconnect(
                    UNSPECIFIED_ERROR,
                    f"credential provider failed: {exc}",
                    DisconnectSource.CLIENT,
                    at=self._clock(),
                ),
                generation,
            )
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
        self._start_mqtt(sock, endpoint, clean_start, username, password, auth)

    def _start_mqtt(
        self,
        sock: OpenedSocket,
        endpoint: Endpoint,
        clean_start: bool,
        username: str | None,
        password: bytes | None,
        auth: tuple[str, bytes | None] | None,
    ) -> None:
        settings = self._settings
        client = self._client
        # paho is typed for str but sends bytes as they are (a password may be binary).
        client.username_pw_set(username, password)  # type: ignore[arg-type]
        props = None if self._v311 else connect_properties(settings, auth)
        client.announced_maximum_packet_size = settings.maximum_packet_size
        # (paho re-sends the session's publishes at CONNACK up to its in-flight limit, then one
        # per ack; 0 is no limit: the Connection keeps the broker's Receive Maximum itself.)
        client.one_publish_at_a_time(self._isolating)
        self._move(Phase.AWAITING_CONNACK)
        self._socket_error = None
        client.prepared_socket = sock
        self._auth.connect_sent()
        try:
            if props is None:  # MQTT 3.1.1: Clean Session was set with the client
                client.connect(endpoint.host, endpoint.port, keepalive=settings.keep_alive)
            else:
                client.connect(
                    endpoint.host,
                    endpoint.port,
                    keepalive=settings.keep_alive,
                    clean_start=clean_start,
                    properties=props,
                )
        except Exception as exc:
            self._finish_failed(
                Disconnect(
                    UNSPECIFIED_ERROR,
                    f"sending CONNECT to {endpoint} failed: {exc}",
                    DisconnectSource.NETWORK,
                    at=self._clock(),
                )
            )
            return
        self._connack_timer = self._loop.call_later(
            settings.connect_timeout, self._connack_timed_out, self._generation
        )

    def _connack_timed_out(self, generation: int) -> None:
        if generation != self._generation or self._phase is not Phase.AWAITING_CONNACK:
            return
        self.abort(
            Disconnect(
                UNSPECIFIED_ERROR,
                f"no CONNACK within {self._settings.connect_timeout}s",
                DisconnectSource.CLIENT,
                at=self._clock(),
            )
        )

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
        self._drop_socket()
        self._attempt_ended(disconnect, was_connected=False)

    # ----------------------------------------------------------------- socket plumbing

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._loop.add_reader(sock, self._on_readable)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._forget_fd(sock)
        self._linger.socket_closed(sock)

    def _on_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._loop.add_writer(sock, self._on_writable)

    def _on_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_writer(sock)

    def _forget_fd(self, sock: Any) -> None:
        for remove in (self._loop.remove_reader, self._loop.remove_writer):
            with contextlib.suppress(ValueError, OSError):
                remove(sock)

    def _on_readable(self) -> None:
        self._watchdog.heard()
        client = self._client
        sock: Any = client.socket()
        for _ in range(_MAX_READS_PER_EVENT):
            if sock is None or client.socket() is not sock:
                return
            rc = client.loop_read()
            if rc != paho.MQTT_ERR_SUCCESS:
                return
            if not client.has_buffered_input and not _has_buffered_input(sock):
                return
        if client.socket() is sock and client.has_buffered_input:
            # The budget is spent with packets already read into our buffer: the socket may not
            # signal readable again (its bytes are with us), so come back by ourselves.
            self._loop.call_soon(self._on_readable)

    def _on_writable(self) -> None:
        self._client.loop_write()

    def _drop_socket(self) -> None:
        """Shut the socket down and let paho observe the EOF (reporting through on_disconnect)."""
        sock: Any = self._client.socket()
        if sock is None:
            return
        self._forget_fd(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        self._client.loop_read()
        if self._client.socket() is not None:  # paho did not notice; close it ourselves
            self._client.close_socket()

    def _cancel_timers(self) -> None:
        if self._connack_timer is not None:
            self._connack_timer.cancel()
            self._connack_timer = None
        self._watchdog.stop()

    def _keep_alive_expired(self, silent_for: float, keep_alive: float) -> None:
        self.abort(
            Disconnect(
                KEEP_ALIVE_TIMEOUT,
                f"Keep alive timeout: nothing from the broker for {silent_for:.1f}s "
                f"(keep_alive {keep_alive}s)",
                DisconnectSource.KEEPALIVE,
                at=self._clock(),
            )
        )

    def _move(self, phase: Phase) -> None:
        """Change phase along the table (anything else is a bug, raised as ``PhaseError``)."""
        self._phase = checked(self._phase, phase)

    # ----------------------------------------------------------------- paho callbacks

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self._phase is not Phase.AWAITING_CONNACK:
            return
        if self._connack_timer is not None:
            self._connack_timer.cancel()
            self._connack_timer = None
        if reason_code.is_failure:
            self._abort_reason = Disconnect(
                reason_code.value,
                str(reason_code),
                DisconnectSource.SERVER,
                at=self._clock(),
                server_reference=getattr(properties, "ServerReference", None),
            )
            # paho closes the socket next and reports through _on_disconnect.
            return
        self._auth.connack_accepted()
        self.limits = V311_LIMITS if self._v311 else _limits_from(properties)
        self.session_present = bool(flags.session_present)
        orphans = [] if self.session_present else self._client.forget_owed_pubrel()
        for mid in orphans:
            self._pubrec_codes.pop(mid, None)
        self._move(Phase.CONNECTED)
        self.connections += 1
        server_keep_alive = self.limits.server_keep_alive
        self._watchdog.start(
            self._settings.keep_alive if server_keep_alive is None else server_keep_alive
        )
        # Reported once paho has re-sent the session's in-flight messages: ConnackHandled.
        self._orphans = orphans

    def _on_adapter_event(self, event: AdapterEvent) -> None:
        """What the paho adapter learnt inside paho's packet handling (see _adapter_events)."""
        if isinstance(event, PubrecReceived):
            self._pubrec_codes[event.mid] = (event.reason_code, event.reason)
        elif isinstance(event, SocketFailed):
            self._socket_error = event.error
        elif isinstance(event, PacketRefused):
            if self._abort_reason is None:
                self._abort_reason = Disconnect(
                    event.reason_code, event.reason, event.source, at=self._clock()
                )
        elif isinstance(event, ConnackHandled):
            orphans, self._orphans = self._orphans, None
            if orphans is not None:
                _logged(self._after_connack)(orphans)

    def _after_connack(self, orphans: list[int]) -> None:
        if self._phase is Phase.CONNECTED:
            self._handler.on_connack(self.session_present, self.limits)
            watcher = self._watcher
            if watcher is not None and self._phase is Phase.CONNECTED:
                watcher.connected(self._connected_event())
        for mid in orphans:  # (gone from paho: reported even if the link died meanwhile)
            self._handler.on_publish_uncertain(
                mid,
                PACKET_ID_NOT_FOUND,
                "the broker lost the session (CONNACK session_present 0) while the QoS 2 "
                "exchange waited for its PUBCOMP: the broker no longer knows the message, "
                "so it may not have been delivered",
            )

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self._phase is Phase.IDLE or self._closing:
            return
        self._report_end(
            self._abort_reason
            or connection_end(
                bool(flags.is_disconnect_packet_from_server),
                reason_code,
                properties,
                self._socket_error,
                self._clock(),
            )
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

    def _on_publish_packet(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        props: Properties | PublishProperties | None,
        mid: int,
    ) -> None:
        """A PUBLISH from the fast path (paho sends the PUBACK after this returns, unless the
        acknowledgements are manual: then the handler calls :meth:`ack`)."""
        try:
            self._handler.on_message(
                Message(
                    topic,
                    payload,
                    qos,
                    retain,
                    NO_PROPERTIES
                    if props is None
                    else props
                    if isinstance(props, PublishProperties)
                    else _from_paho_properties(props),
                    _packet_id=mid,
                )
            )
        except Exception:
            log.exception("rxmqtt engine: on_message failed")

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            log.warning("dropping a message whose topic is not valid UTF-8")
            return
        message = Message(
            topic=topic,
            payload=bytes(msg.payload),
            qos=msg.qos,
            retain=bool(msg.retain),
            properties=_from_paho_properties(getattr(msg, "properties", None)),
        )
        self._handler.on_message(message)

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        pubrec = self._pubrec_codes.pop(mid, None)
        if self._isolating:
            self._end_isolation_after(mid)
        accepted = pubrec is None or pubrec[0] < 0x80
        if reason_code.is_failure and accepted and self._client.held_qos(mid) == 2:
            # a PUBREC accepted it, the PUBCOMP failed
            self._handler.on_publish_uncertain(
                mid,
                reason_code.value,
                f"{reason_code}: the broker accepted the message (PUBREC) but its PUBCOMP "
                "reports a failure, so it may not have been delivered",
            )
            return
        if pubrec is not None:
            code, reason = pubrec
        else:
            code, reason = reason_code.value, str(reason_code)
        self._handler.on_publish_done(mid, code, reason)

    def _end_isolation_after(self, mid: int) -> None:
        """Back to sending publishes freely once nothing waits behind the one acknowledged."""
        if not self._client.any_held_back(besides=mid):
            self._isolating = False
            self._client.one_publish_at_a_time(False)

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self._handler.on_suback(mid, [(code.value, str(code)) for code in reason_codes])

    def _on_unsubscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self._handler.on_unsuback(mid, [(code.value, str(code)) for code in reason_codes])
