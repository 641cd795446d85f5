"""The engine's one handle on paho: it configures the client, wires every paho callback in one
block (:meth:`PahoLink.wire`), turns paho's ``ReasonCode``/``Properties`` into our types and its
callbacks into events, and offers the engine plain methods (no paho type crosses to it).

paho's private parts stay in ``_paho_client``; this module uses paho's public API only.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ..broker_limits import V311_LIMITS, BrokerLimits
from ..errors import NotConnectedError
from ..message import Message
from ..settings import ConnectionSettings, Endpoint
from ..settings._protocol import MQTT_3_1_1
from ..subscription_options import SubscriptionOptions
from ._adapter_events import (
    ConnackReceived,
    EventSink,
    LinkClosed,
    PublishCompleted,
    ReasonCodes,
    SubackReceived,
    UnsubackReceived,
)
from ._convert import (
    _limits_from,
    _properties,
    _to_paho_properties,
    connect_properties,
    reason_text,
)
from ._paho_client import AuthSink, _PahoClient
from ._sockets import OpenedSocket

log = logging.getLogger("rxmqtt.engine")


class SocketHooks(Protocol):
    """Who hears about paho's socket (the socket pump)."""

    def opened(self, sock: Any) -> None: ...

    def closed(self, sock: Any) -> None: ...

    def want_write(self, sock: Any) -> None: ...

    def wrote_all(self, sock: Any) -> None: ...


def _logged(method: Callable[..., None]) -> Callable[..., None]:
    """paho swallows exceptions raised in callbacks; log them with their traceback instead of
    letting a bug hang a connection silently. Applied to :class:`PahoLink`'s methods once, so a
    connection hands paho bound methods, not a wrapper and a lambda per callback."""
    name = method.__name__

    @functools.wraps(method)
    def call(self: Any, *args: Any) -> None:
        try:
            method(self, *args)
        except Exception:
            log.exception("rxmqtt engine: %s failed", name)

    return call


def _codes(reason_codes: list[ReasonCode]) -> ReasonCodes:
    return tuple((code.value, reason_text(code)) for code in reason_codes)


class PahoLink:
    """One paho client for the life of a connection (its MQTT session lives in it), seen as
    plain methods and events."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self._v311 = settings.protocol_version == MQTT_3_1_1
        """MQTT 3.1.1: no properties, and Clean Session (``settings.clean_start``) on every
        attempt: with 1 the broker never keeps a session to resume, so asking for one on a
        reconnect would only leave a session behind that nothing ends."""
        client = self._client = _PahoClient(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=paho.MQTTv311 if self._v311 else paho.MQTTv5,
            clean_session=settings.clean_start if self._v311 else None,
        )
        client.suppress_exceptions = True
        client.max_queued_messages_set(0)
        # The Connection keeps the broker's Receive Maximum window itself (it queues beyond it).
        client.max_inflight_messages_set(0)
        will = settings.will
        if will is not None:
            will_props = _to_paho_properties(will.properties, PacketTypes.WILLMESSAGE)
            if will.delay_interval:
                will_props = will_props or _properties(PacketTypes.WILLMESSAGE)
                will_props.WillDelayInterval = will.delay_interval
            client.will_set(will.topic, will.payload, will.qos, will.retain, will_props)
        self._settings = settings
        self._events: EventSink = lambda _event: None
        self._sockets: SocketHooks  # (set by wire(), before paho calls any hook)
        # The socket pump's view of the client (see SocketPump), paho's own methods:
        self.socket: Callable[[], Any] = client.socket
        """The socket of the current attempt, or None."""
        self.write: Callable[[], object] = client.loop_write
        """Write what is queued, as far as the socket takes it."""
        self.wants_write: Callable[[], bool] = client.want_write
        """Whether packets are still queued (the socket took only part of them)."""
        self.close_socket: Callable[[], None] = client.close_socket
        """Close a socket paho did not notice was shut (paho reports the end)."""
        self.housekeeping: Callable[[], object] = client.loop_misc
        """paho's timers: keep-alive PINGREQ, and its own view of a silent link."""
        self.keepalive_check_due: Callable[[], float] = client.keepalive_check_due
        """Seconds until ``housekeeping`` next has something to do (``math.inf``: never)."""
        self.ping_sent_at: Callable[[], float] = client.ping_sent_at
        """When the unanswered PINGREQ went out (0.0: none is outstanding)."""
        # Enhanced authentication (paho has no AUTH API: the adapter's own packets):
        self.send_auth: Callable[[int, str, bytes | None], None] = client.send_auth
        """Queue an AUTH packet: (reason code, method, data)."""
        self.send_disconnect_now: Callable[[int], None] = client.send_disconnect_now
        """Best effort: write DISCONNECT with a reason code before the link is dropped."""

    def wire(self, events: EventSink, sockets: SocketHooks, auth: AuthSink | None = None) -> None:
        """Every paho callback, in one place: socket hooks to ``sockets``, protocol callbacks to
        ``events`` (as typed events), each AUTH packet to ``auth`` (whose answer, a refusal or
        None, the adapter acts on). ``on_message`` stays unset: every PUBLISH is decoded by the
        adapter (``_PahoClient._handle_publish``), which reports it itself."""
        client = self._client
        self._events = client.events = events
        client.auth_sink = auth
        self._sockets = sockets
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe

    # ------------------------------------------------ paho's socket callbacks, to the pump

    @_logged
    def _on_socket_open(self, _c: Any, _u: Any, sock: Any) -> None:
        self._sockets.opened(sock)

    @_logged
    def _on_socket_close(self, _c: Any, _u: Any, sock: Any) -> None:
        self._sockets.closed(sock)

    @_logged
    def _on_socket_register_write(self, _c: Any, _u: Any, sock: Any) -> None:
        self._sockets.want_write(sock)

    @_logged
    def _on_socket_unregister_write(self, _c: Any, _u: Any, sock: Any) -> None:
        self._sockets.wrote_all(sock)

    # ------------------------------------------------ paho's callbacks, as events

    @_logged
    def _on_connect(
        self, _c: Any, _u: Any, flags: Any, code: ReasonCode, properties: Properties | None
    ) -> None:
        accepted = not code.is_failure
        session_present = bool(flags.session_present)
        orphans = self._client.forget_lost_session() if accepted and not session_present else []
        if not accepted:
            limits = BrokerLimits()
        else:
            limits = V311_LIMITS if self._v311 else _limits_from(properties)
        self._events(
            ConnackReceived(
                code.value,
                reason_text(code),
                session_present,
                limits,
                getattr(properties, "ServerReference", None),
                tuple(orphans),
            )
        )

    @_logged
    def _on_disconnect(
        self, _c: Any, _u: Any, flags: Any, code: ReasonCode, properties: Properties | None
    ) -> None:
        self._events(
            LinkClosed(
                bool(flags.is_disconnect_packet_from_server),
                code.value,
                reason_text(code),
                getattr(properties, "ReasonString", None),
                getattr(properties, "ServerReference", None),
            )
        )

    @_logged
    def _on_publish(self, _c: Any, _u: Any, mid: int, code: ReasonCode, _p: Any) -> None:
        qos = self._client.held_qos(mid) or 0  # (paho drops it after this callback)
        self._events(PublishCompleted(mid, qos, code.value, reason_text(code)))

    @_logged
    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: list[ReasonCode], _p: Any) -> None:
        self._events(SubackReceived(mid, _codes(codes)))

    @_logged
    def _on_unsubscribe(self, _c: Any, _u: Any, mid: int, codes: list[ReasonCode], _p: Any) -> None:
        self._events(UnsubackReceived(mid, _codes(codes)))

    # ------------------------------------------------ the socket pump's

    @property
    def has_buffered_input(self) -> bool:
        """Bytes were read from the socket that paho has not parsed yet."""
        return self._client.has_buffered_input

    def read(self) -> bool:
        """Read and handle what the socket has; False when the link failed or ended."""
        return bool(self._client.loop_read() == paho.MQTT_ERR_SUCCESS)

    # ------------------------------------------------ the engine's

    def connect(
        self,
        sock: OpenedSocket,
        endpoint: Endpoint,
        *,
        clean_start: bool,
        credentials: tuple[str | None, bytes | None],
        auth: tuple[str, bytes | None] | None,
        one_at_a_time: bool,
    ) -> None:
        """Hand ``sock`` to paho and send CONNECT (raises when it cannot be sent)."""
        settings = self._settings
        client = self._client
        username, password = credentials
        # paho is typed for str but sends bytes as they are (a password may be binary).
        client.username_pw_set(username, password)  # type: ignore[arg-type]
        client.announced_maximum_packet_size = settings.maximum_packet_size
        # (paho re-sends the session's publishes at CONNACK up to its in-flight limit, then one
        # per ack; 0 is no limit: the Connection keeps the broker's Receive Maximum itself.)
        client.one_publish_at_a_time(one_at_a_time)
        client.prepared_socket = sock
        if self._v311:  # Clean Session was set with the client; no properties
            client.connect(endpoint.host, endpoint.port, keepalive=settings.keep_alive)
            return
        client.connect(
            endpoint.host,
            endpoint.port,
            keepalive=settings.keep_alive,
            clean_start=clean_start,
            properties=connect_properties(settings, auth),
        )

    def disconnect(self, *, end_session: bool) -> None:
        """Write DISCONNECT (reason 0: the broker discards the Will); ``end_session`` adds Session
        Expiry Interval 0, so the broker discards the session at once. paho closes the socket
        once it is written."""
        properties = None
        if end_session:
            properties = _properties(PacketTypes.DISCONNECT)
            properties.SessionExpiryInterval = 0
        self._client.disconnect(properties=properties)
        self._client.loop_write()

    def publish(self, message: Message) -> int:
        """Queue ``message`` for sending; returns the packet id its completion will carry."""
        properties = _to_paho_properties(message.properties, PacketTypes.PUBLISH)
        mid = self._client.send_publish(
            message.topic, message.payload, message.qos, message.retain, properties
        )
        if mid is None:
            raise NotConnectedError("publish: every packet id is in flight")
        return mid

    def subscribe(
        self, filters: list[tuple[str, SubscriptionOptions]], identifier: int | None
    ) -> int:
        """Send one SUBSCRIBE; returns its packet id."""
        if self._v311:  # a QoS per filter: the other options are MQTT 5's
            rc, mid = self._client.subscribe([(f, options.qos) for f, options in filters])
            return self._sent("subscribe", rc, mid)
        properties = None
        if identifier is not None:
            properties = _properties(PacketTypes.SUBSCRIBE)
            properties.SubscriptionIdentifier = identifier
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
        return self._sent("subscribe", rc, mid)

    def unsubscribe(self, filters: list[str]) -> int:
        """Send one UNSUBSCRIBE; returns its packet id."""
        rc, mid = self._client.unsubscribe(filters)
        return self._sent("unsubscribe", rc, mid)

    @staticmethod
    def _sent(what: str, rc: Any, mid: int | None) -> int:
        if rc != paho.MQTT_ERR_SUCCESS or mid is None:
            raise NotConnectedError(f"paho refused {what}: {paho.error_string(rc)}")
        return int(mid)

    def manual_acks(self, on: bool) -> None:
        """Acknowledge received QoS 1/2 messages only through :meth:`ack` (or at once)."""
        self._client.manual_ack_set(on)

    def ack(self, mid: int, qos: int) -> None:
        """The PUBACK (QoS 1) or PUBREC (QoS 2) of a received message (manual acks)."""
        self._client.acknowledge(mid, qos)

    # ------------------------------------------------ paho's session (its outgoing publishes)

    def held_mids(self) -> list[int]:
        """Packet ids of publishes paho still holds (unacknowledged or waiting for the window)."""
        return self._client.held_mids()

    def mids_awaiting_ack(self) -> list[int]:
        """Packet ids of QoS 1/2 publishes written and not yet acknowledged, oldest first."""
        return self._client.mids_awaiting_ack()

    def one_publish_at_a_time(self, on: bool) -> None:
        """Limit QoS 1/2 publishes in flight to one (paho sends the next on each ack), or not."""
        self._client.one_publish_at_a_time(on)

    def any_held_back(self, *, besides: int) -> bool:
        """Whether a publish other than ``besides`` waits for the in-flight window."""
        return self._client.any_held_back(besides=besides)

    def forget_message(self, mid: int) -> None:
        """Stop re-sending one publish (its owner gave up on it)."""
        self._client.forget_message(mid)

    def forget_all_messages(self) -> None:
        """Drop every publish paho holds (the connection closes for good)."""
        self._client.forget_all_messages()
