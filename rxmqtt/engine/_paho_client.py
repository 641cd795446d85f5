"""The one seam to paho: its client with the engine's overrides, and every private access.

Every override here leans on a paho internal; ``_seam_check`` lists each one (with signatures
and record layouts) and ``Engine`` refuses to start, naming what is missing, when the installed
paho lacks one. Nothing else in rxmqtt touches paho's private parts (ruff's SLF001 and TID251
enforce it outside ``rxmqtt/engine``).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import itertools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ..lifecycle import DisconnectSource
from ..policies import v311_connack_reason_code
from ._adapter_events import (
    ConnackHandled,
    EventSink,
    MessageReceived,
    PacketRefused,
    PublishCompleted,
    PublishesAcknowledged,
    PublishesWritten,
    PubrecReceived,
    SocketFailed,
)
from ._auth_driver import Refusal
from ._auth_exchange import AuthReceived
from ._convert import _properties, reason_text
from ._publish_codec import MalformedPublish, decode_publish, encode_publish, remaining_length
from ._seam_check import missing_paho_seams
from ._sockets import OpenedSocket

if TYPE_CHECKING:
    from paho.mqtt.client import _InPacket

try:
    from paho.mqtt.exception import MalformedPacket
except ImportError:  # a paho before 2.2: Engine() refuses it, naming this (see _seam_check)

    class MalformedPacket(Exception):  # type: ignore[no-redef]
        """Stands in so that importing rxmqtt works and the seam check can name what is gone."""


try:
    PAHO_VERSION_TEXT = importlib.metadata.version("paho-mqtt")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - vendored copies
    PAHO_VERSION_TEXT = "unknown"
_PAHO_PARTS = PAHO_VERSION_TEXT.split(".")[:2]
PAHO_VERSION = (
    tuple(int(part) for part in _PAHO_PARTS)
    if all(part.isdigit() for part in _PAHO_PARTS)
    else (0, 0)
)

_READ_SIZE = 65536
"""Bytes asked of the socket per recv(): paho's 1-byte, 1-byte, rest reads are served from it."""

QOS0_IDS_FROM = 0x10000
"""The ids of QoS 0 publishes start here, above every packet id (1..65535)."""

_WRITE_BATCH = 65536
"""Bytes of queued packets joined into one send()."""


AuthSink = Callable[[AuthReceived], "Refusal | None"]
"""Where an incoming AUTH goes; a ``Refusal`` ends the connection (DISCONNECT with its code)."""


def _ignore(event: object) -> None:
    """The event sink of a client nobody listens to (tests of the codec alone)."""


class _PahoClient(paho.Client):
    """paho's client with the engine's seams: the socket comes from us (opened asynchronously);
    every PUBLISH is encoded (``send_publish``) and decoded (``_handle_publish``) here, once,
    whatever its QoS; what is learnt inside paho's packet handling goes to ``events`` at once
    (a message, the PUBREC reason code paho drops, a refused packet, a socket error, the end of
    CONNACK handling); whole packets take a fast path around paho's byte-at-a-time reader."""

    def __init__(self, *args: Any, events: EventSink = _ignore, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events = events
        """Where the adapter reports what it learns (the engine's event sink)."""
        self.prepared_socket: OpenedSocket | None = None
        """The socket the next connect() uses (paho's own connect would block)."""
        self.announced_maximum_packet_size: int | None = None
        """The Maximum Packet Size this client announced in CONNECT (enforced on input)."""
        self.auth_sink: AuthSink | None = None
        """Receives each AUTH packet (paho has no AUTH handling: it would call it a protocol
        error); what it returns (a refusal, or None) is the adapter's answer. Without a sink
        an AUTH is refused as a protocol error."""
        self._read_buf = b""
        self._read_pos = 0
        self._qos0_ids = itertools.count(QOS0_IDS_FROM)

    @property
    def has_buffered_input(self) -> bool:
        """Bytes were read from the socket that paho has not parsed yet."""
        return self._read_pos < len(self._read_buf)

    def _sock_recv(self, bufsize: int) -> bytes:
        # paho reads each packet as 1 byte (type), 1-4 bytes (length), then the rest: three
        # system calls per packet. One large recv() feeds them from a buffer instead.
        data, pos = self._read_buf, self._read_pos
        if pos >= len(data):
            data = self._sock_recv_raw(_READ_SIZE)
            if len(data) <= bufsize:
                return data
            pos = 0
        end = pos + bufsize
        if end >= len(data):
            self._read_buf, self._read_pos = b"", 0
            return data[pos:] if pos else data
        self._read_buf, self._read_pos = data, end
        return data[pos:end]

    def _sock_recv_raw(self, bufsize: int) -> bytes:
        try:
            return super()._sock_recv(bufsize)
        except BlockingIOError:
            raise
        except OSError as exc:
            self.events(SocketFailed(exc))
            raise

    def _sock_close(self) -> None:
        self._read_buf, self._read_pos = b"", 0  # a new socket must not see the old one's bytes
        super()._sock_close()

    def _sock_send(self, buf: bytes | bytearray) -> int:
        try:
            return super()._sock_send(buf)
        except BlockingIOError:
            raise
        except OSError as exc:
            self.events(SocketFailed(exc))
            raise

    def _create_socket(self) -> Any:
        sock = self.prepared_socket
        self.prepared_socket = None
        if sock is None:
            raise ConnectionError("rxmqtt engine: no prepared socket for this attempt")
        return sock

    def _handle_connack(self) -> Any:
        packet = self._in_packet["packet"]
        code = packet[1] if len(packet) >= 2 else 0
        v5 = self._protocol == paho.MQTTv5
        if code and (not v5 or code < 0x80):
            # An MQTT 3.1.1 return code: a refused 3.1.1 connection, or a 3.1.1-only broker
            # answering our MQTT 5 CONNECT. Reported with its MQTT 5 equivalent (one table of
            # fatal codes for both versions), the 3.1.1 code named in the reason.
            mqtt5_code, name = v311_connack_reason_code(code)
            reason = f"{name} (MQTT 3.1.1 CONNACK return code {code})"
            if v5:
                reason += (
                    ": the broker answered MQTT 5 in MQTT 3.1.1, so it speaks only 3.1.1 or "
                    "older; connect with protocol_version=4"
                )
            return self._refuse(mqtt5_code, reason, DisconnectSource.SERVER)
        if v5 and code and not _is_connack_code(code):
            # a refusal MQTT 5 does not define: keep the broker's code
            return self._refuse(
                code,
                f"the broker refused the connection with unknown reason code 0x{code:02X}",
                DisconnectSource.SERVER,
            )
        # paho calls on_connect *before* it re-sends the session's unacknowledged PUBLISH and
        # PUBREL packets, so anything the owner publishes from on_connect (the offline queue's
        # drain) would overtake them [MQTT-4.6.0-1]. The owner's CONNACK handling runs after.
        rc = super()._handle_connack()
        self.events(ConnackHandled())
        return rc

    def _messages_reconnect_reset_out(self) -> None:
        # paho runs this on every connect() and it is not idempotent: a second run (after an
        # attempt that failed before CONNACK) turns a QoS 2 message whose PUBREL was sent back
        # into "re-send the PUBLISH", which the broker, having already forwarded it, forwards
        # again [MQTT-4.3.3: MUST NOT re-send the PUBLISH once it has sent the PUBREL].
        owed_pubrel = [
            m
            for m in self._out_messages.values()
            if m.qos == 2 and m.state in (paho.mqtt_ms_wait_for_pubcomp, paho.mqtt_ms_resend_pubrel)
        ]
        super()._messages_reconnect_reset_out()
        if not self._check_clean_session():
            for m in owed_pubrel:
                m.state = paho.mqtt_ms_resend_pubrel
        if self._max_inflight_messages == 1:
            # One QoS 1/2 PUBLISH at a time (see Engine.isolate_publishes): paho's reset does
            # not apply the limit, so hold back all but the first. They go to the end, behind
            # the owed PUBRELs, because paho's CONNACK re-send stops at the first held one; it
            # sends them one per ack afterwards, with their packet ids [MQTT-4.4.0-1].
            held = [
                m for m in self._out_messages.values() if m.qos and m.state == paho.mqtt_ms_publish
            ]
            for m in held[1:]:
                m.state = paho.mqtt_ms_queued
                self._out_messages.move_to_end(m.mid)

    def one_publish_at_a_time(self, on: bool) -> None:
        """Limit QoS 1/2 PUBLISHes in flight to one (paho sends the next on each ack), or lift
        the limit (0: the owner keeps the broker's window). paho's setter refuses to change it
        while connected; the limit itself works at any time."""
        self._max_inflight_messages = 1 if on else 0

    def forget_lost_session(self) -> list[int]:
        """After a CONNACK without a session: drop the QoS 2 messages whose PUBREL is still owed
        (PUBREC received, no PUBCOMP) and return their packet ids -- the broker no longer knows
        them, and a PUBREL for a packet id it never saw in this session would be meaningless --
        and forget the incoming QoS 2 packet ids awaiting a PUBREL, so a new message reusing
        one is not taken for a re-send."""
        owed = [
            mid
            for mid, m in self._out_messages.items()
            if m.qos == 2 and m.state in (paho.mqtt_ms_wait_for_pubcomp, paho.mqtt_ms_resend_pubrel)
        ]
        for mid in owed:
            del self._out_messages[mid]
        with self._in_message_mutex:
            self._in_messages.clear()
        return owed

    # The engine's view of paho's outgoing session state (``_out_messages``: mid -> MQTTMessage
    # with ``qos`` and ``state``), so the engine itself touches no paho internals.

    def held_mids(self) -> list[int]:
        """Packet ids of publishes paho still holds (unacknowledged or waiting for the window)."""
        return list(self._out_messages)

    def mids_awaiting_ack(self) -> list[int]:
        """Packet ids of QoS 1/2 publishes written and not yet acknowledged, oldest first."""
        return [
            mid
            for mid, m in self._out_messages.items()
            if m.state in (paho.mqtt_ms_wait_for_puback, paho.mqtt_ms_wait_for_pubrec)
        ]

    def held_qos(self, mid: int) -> int | None:
        """The QoS of the publish paho holds under ``mid``, or None when it holds none."""
        held = self._out_messages.get(mid)
        return None if held is None else int(held.qos)

    def any_held_back(self, *, besides: int) -> bool:
        """Whether a publish other than ``besides`` waits for the in-flight window."""
        return any(
            m.state == paho.mqtt_ms_queued
            for mid, m in self._out_messages.items()
            if mid != besides
        )

    def forget_message(self, mid: int) -> None:
        """Stop re-sending one publish (its owner gave up on it)."""
        self._out_messages.pop(mid, None)

    def forget_all_messages(self) -> None:
        """Drop every publish paho holds (the connection closes for good)."""
        self._out_messages.clear()

    def keepalive_check_due(self) -> float:
        """Seconds until paho's keep-alive check (``loop_misc``) next has something to do: a
        PINGREQ once ``keep_alive`` passed without a packet in one direction, or the end of a
        PINGREQ unanswered for as long; ``math.inf`` without a keep-alive or a socket."""
        keepalive = self._keepalive
        if not keepalive or self._sock is None:
            return math.inf
        with self._msgtime_mutex:
            due = min(self._last_msg_out, self._last_bytes_received) + keepalive
        if self._ping_t:
            due = min(due, self._ping_t + keepalive)
        return due - paho.time_func()

    def _send_pingreq(self) -> Any:
        # An idle link's one packet: paho queues it and asks the loop to watch the socket for
        # writability, then writes it on the next pass and stops watching (two epoll changes
        # and a wake-up per PINGREQ, a hundred a second for a thousand idle connections).
        # With nothing queued ahead of it, it is written at once instead.
        if self._out_packet or self._sock is None:
            return super()._send_pingreq()
        try:
            written = self._sock_send(_PINGREQ)
        except BlockingIOError:
            written = 0
        if written < len(_PINGREQ):  # (the socket's buffer is full: paho's way for the rest)
            self._packet_queue(paho.PINGREQ, _PINGREQ[written:], 0, 0)
        self._ping_t = paho.time_func()
        return paho.MQTT_ERR_SUCCESS

    def ping_sent_at(self) -> float:
        """When the PINGREQ still unanswered went out (paho's clock), 0.0 when none is."""
        return float(self._ping_t)

    def close_socket(self) -> None:
        """Close the socket paho did not notice was shut (paho's own close, callbacks included)."""
        self._sock_close()

    def _refuse(self, code: int, reason: str, source: DisconnectSource) -> Any:
        self.events(PacketRefused(code, reason, source))
        return paho.MQTT_ERR_PROTOCOL

    def _incoming_size(self) -> int:
        packet = self._in_packet
        return 1 + len(packet["remaining_count"]) + int(packet["remaining_length"])

    def _incoming_too_large(self) -> bool:
        limit = self.announced_maximum_packet_size
        return (
            limit is not None
            and bool(self._in_packet["have_remaining"])
            and self._incoming_size() > limit
        )

    def _packet_read(self) -> Any:
        if self._in_packet["command"] == 0:
            if self._read_pos >= len(self._read_buf):
                rc = self._fill_read_buffer()
                if rc is not None:
                    return rc
            rc = self._handle_buffered_packets()
            if rc is not None:
                return rc
        rc = super()._packet_read()
        if rc == paho.MQTT_ERR_AGAIN and self._incoming_too_large():  # still arriving
            return self._packet_too_large()
        return rc

    def _fill_read_buffer(self) -> Any | None:
        """One large recv() into the read buffer, so that even the first packet of a read takes
        the whole-packet path; paho's code for what stops it (as its reader answers a failed
        first recv), or None once bytes are buffered."""
        try:
            data = self._sock_recv_raw(_READ_SIZE)
        except BlockingIOError:
            return paho.MQTT_ERR_AGAIN
        except OSError:  # (told as SocketFailed by _sock_recv_raw)
            return paho.MQTT_ERR_CONN_LOST
        if not data:
            return paho.MQTT_ERR_CONN_LOST  # the peer closed the connection
        self._read_buf, self._read_pos = data, 0
        return None

    def _handle_buffered_packets(self) -> Any | None:
        # Every packet that lies whole in the read buffer, handled in one pass: PUBLISH and a
        # plain PUBACK straight from the bytes, the others through paho's handler. paho's reader
        # takes a packet a byte at a time (type, each length byte, then the rest) through a dict
        # of partial state and two clock reads, and paho's loop_read() one packet per call.
        # None: no whole packet is buffered; paho's reader takes it from here.
        data, pos = self._read_buf, self._read_pos
        size = len(data)
        limit = self.announced_maximum_packet_size
        v5 = self._protocol == paho.MQTTv5
        rc: Any = None
        acks: list[PublishCompleted] = []  # plain PUBACKs: one event, one publisher drain
        while pos < size:
            start = pos
            pos += 1
            length, shift = 0, 0
            while True:
                if pos >= size or shift == 28:
                    pos = start  # not whole yet (a fifth length byte is paho's to refuse)
                    break
                byte = data[pos]
                pos += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            end = pos + length
            if pos == start or end > size:
                pos = start
                break
            self._read_pos = end  # (consumed before it is handled: a handler may read on)
            header = data[start]
            command = header & 0xF0
            body = data[pos:end]
            pos = end
            if limit is not None and end - start > limit:
                command = 0  # paho's route, which refuses it by size
            if command == paho.PUBLISH:
                if acks:
                    self.events(PublishesAcknowledged(tuple(acks)))
                    acks.clear()
                rc = self._publish_received(header, body)
            elif command == paho.PUBACK and (code := _plain_puback_code(body, v5=v5)) is not None:
                rc, ack = self._settle_puback((body[0] << 8) | body[1], code)
                if ack is not None:
                    acks.append(ack)
            else:
                if acks:  # (told before what follows them)
                    self.events(PublishesAcknowledged(tuple(acks)))
                    acks.clear()
                rc = self._handle_whole(header, data[start + 1 : end - length], length, body)
            if rc or self._read_buf is not data:  # an error, or the socket went
                break
        if acks:
            self.events(PublishesAcknowledged(tuple(acks)))
        if rc is None:
            return None
        if self._read_buf is data and pos >= size:
            self._read_buf, self._read_pos = b"", 0
        with self._msgtime_mutex:
            self._last_bytes_received = paho.time_func()
        return rc

    def _handle_whole(self, header: int, length_bytes: bytes, length: int, body: bytes) -> Any:
        """A whole packet through paho's own handler (its record of the packet filled in)."""
        self._in_packet = _in_packet(
            header, list(length_bytes), 128 ** len(length_bytes), length, bytearray(body)
        )
        try:
            return self._packet_handle()
        except MalformedPacket:
            return paho.MQTT_ERR_PROTOCOL
        finally:
            self._in_packet = _in_packet(0, [], 1, 0, bytearray())

    def _packet_handle(self) -> Any:
        if self._incoming_too_large():  # arrived whole in one read
            return self._packet_too_large()
        # The two packets of the hot path go straight to the adapter's own handlers (paho's
        # dispatch would call the same methods after a chain of comparisons).
        command = self._in_packet["command"] & 0xF0
        if command == paho.PUBLISH:
            return self._handle_publish()
        if command == paho.PUBACK:
            return self._handle_pubackcomp("PUBACK")
        if command == paho.AUTH and self._protocol == paho.MQTTv5:
            return self._handle_auth()
        return super()._packet_handle()

    def _handle_auth(self) -> Any:
        # paho 2.x does not know AUTH (MQTT 5 enhanced authentication): it would drop the link
        # as a protocol error, also between CONNECT and CONNACK. Decoded here and handed to the
        # sink; paho goes on waiting for CONNACK (or serving the link) meanwhile.
        try:
            auth = _decode_auth(bytes(self._in_packet["packet"]))
        except Exception as exc:  # paho's decoder raises struct.error, MQTTException, ...
            refusal: Refusal | None = Refusal(
                0x81, f"Malformed Packet: an AUTH that cannot be decoded ({exc})"
            )
        else:
            sink = self.auth_sink
            refusal = sink(auth) if sink is not None else _UNASKED_AUTH
        if refusal is None:
            return paho.MQTT_ERR_SUCCESS
        self.send_disconnect_now(refusal.reason_code)
        return self._refuse(refusal.reason_code, refusal.reason, _CLIENT)

    def send_auth(self, reason_code: int, method: str, data: bytes | None) -> None:
        """Queue an AUTH packet (paho has no API for it): the reason code, then the
        Authentication Method and, if any, the Authentication Data."""
        props = _properties(PacketTypes.AUTH)
        props.AuthenticationMethod = method
        if data is not None:
            props.AuthenticationData = data
        body = bytes((reason_code,)) + props.pack()  # type: ignore[no-untyped-call]
        packet = bytearray((paho.AUTH,)) + remaining_length(len(body)) + body
        self._packet_queue(paho.AUTH, packet, 0, 0)

    def send_disconnect_now(self, reason_code: int) -> None:
        """Best effort: write DISCONNECT with ``reason_code`` straight to the socket, for a
        link this client is about to drop (paho closes it without a word when a handler
        returns an error). Skipped when other packets are half-written ahead of it."""
        if self._sock is None or self._out_packet:
            return
        with contextlib.suppress(OSError):
            self._sock_send(bytes((paho.DISCONNECT, 2, reason_code, 0)))

    def _packet_too_large(self) -> Any:
        return self._refuse(
            0x95,
            f"Packet too large: the broker sent a {self._incoming_size()}-byte packet, over the "
            f"maximum_packet_size of {self.announced_maximum_packet_size} this client announced",
            DisconnectSource.CLIENT,
        )

    def _handle_publish(self) -> Any:
        return self._publish_received(self._in_packet["command"], self._in_packet["packet"])

    def _publish_received(self, header: int, body: bytes | bytearray) -> Any:
        # The one receive route of a PUBLISH, whatever its QoS: decoded here (no MQTTMessage,
        # properties only when there are some) and handed to the engine as MessageReceived.
        # A QoS 2 message is delivered on its PUBLISH (MQTT 5 4.3.3's first method); once its
        # PUBREC is sent paho keeps its packet id in _in_messages until the PUBREL, and a
        # re-sent PUBLISH with that id is answered with PUBREC, not delivered twice.
        # Under manual acknowledgement the PUBACK/PUBREC waits for ``acknowledge``.
        try:
            message, mid, _ = decode_publish(header, body, self._protocol == paho.MQTTv5)
        except MalformedPublish as exc:  # (a topic that is not UTF-8, too: MQTT 5 1.5.4)
            return self._refuse(0x81, f"Malformed Packet: {exc}", DisconnectSource.CLIENT)
        qos = message.qos
        if qos == 2 and mid in self._in_messages:  # accepted already [MQTT-4.3.3-9]
            return self._send_pubrec(mid)
        self.events(MessageReceived(message))
        if self._manual_ack or not qos:
            return paho.MQTT_ERR_SUCCESS
        return self._accept(mid, qos)

    def acknowledge(self, mid: int, qos: int) -> None:
        """Manual acknowledgement: the PUBACK (QoS 1) or PUBREC (QoS 2) of a received message.
        (paho's own ``ack()`` answers QoS 2 with PUBCOMP: it delivers QoS 2 on PUBREL.)"""
        if qos:
            self._accept(mid, qos)

    def _accept(self, mid: int, qos: int) -> Any:
        """PUBACK a QoS 1 message; PUBREC a QoS 2 one, its packet id held until the PUBREL."""
        if qos == 1:
            return self._send_puback(mid)
        with self._in_message_mutex:
            self._in_messages[mid] = _awaiting_pubrel(mid)
        return self._send_pubrec(mid)

    def _handle_pubrel(self) -> Any:
        # Under manual acknowledgement paho leaves the PUBCOMP to its ``ack()``; here the
        # message was delivered on its PUBLISH and its PUBREC sent already: complete now.
        if not self._manual_ack:
            return super()._handle_pubrel()
        packet = self._in_packet["packet"]
        if len(packet) < 2:
            raise MalformedPacket("PUBREL shorter than its packet id")
        mid = (packet[0] << 8) | packet[1]
        with self._in_message_mutex:
            self._in_messages.pop(mid, None)
        return self._send_pubcomp(mid)

    def send_publish(
        self, topic: str, payload: bytes, qos: int, retain: bool, properties: Properties | None
    ) -> int | None:
        """The one send route of a PUBLISH, whatever its QoS: encoded here, queued on paho's
        out-queue; a QoS 1/2 one also enters paho's session (``_out_messages``, as paho's
        ``publish()`` does), so paho matches its acks and re-sends it (DUP) after a reconnect.
        Returns its packet id, or None when that id is still in flight (65535 are). A QoS 0
        PUBLISH has no packet id: it gets an id of its own, above 65535 (never a packet id),
        which its ``PublishesWritten`` carries."""
        name = topic.encode("utf-8")
        block = None
        if self._protocol == paho.MQTTv5:
            block = b"\x00" if properties is None else properties.pack()  # type: ignore[no-untyped-call]
        if not qos:
            mid = next(self._qos0_ids)
            if self._sock is not None:  # (without a socket a QoS 0 message is gone, as in paho)
                packet = encode_publish(name, payload, 0, retain, 0, block)
                # paho's _packet_queue, without its checks for a thread it does not run here
                self._out_packet.append(
                    {
                        "command": paho.PUBLISH,
                        "mid": mid,
                        "qos": 0,
                        "pos": 0,
                        "to_process": len(packet),
                        "packet": packet,
                        "info": _NOBODY_WAITS,
                    }
                )
                self._call_socket_register_write()
            return mid
        mid = self._mid_generate()
        packet = encode_publish(name, payload, qos, retain, mid, block)
        message = _session_message(mid, name, payload, qos, retain, properties)
        with self._out_message_mutex:
            if mid in self._out_messages:
                return None
            self._out_messages[mid] = message
            if self._max_inflight_messages and (
                self._inflight_messages >= self._max_inflight_messages
            ):
                message.state = paho.mqtt_ms_queued  # paho sends it on an ack
            elif self._sock is None:
                message.state = paho.mqtt_ms_publish  # paho sends it on the next CONNACK
            else:
                self._inflight_messages += 1
                message.state = (
                    paho.mqtt_ms_wait_for_puback if qos == 1 else paho.mqtt_ms_wait_for_pubrec
                )
                self._packet_queue(paho.PUBLISH, packet, mid, qos, message.info)
        return mid

    def _packet_write(self) -> Any:
        # paho writes one packet per send() and, for each QoS 0 PUBLISH, builds a ReasonCode
        # and a Properties for its on_publish. Here consecutive queued packets (up to
        # _WRITE_BATCH bytes) go out in one send(), and the QoS 0 publishes written are told in
        # one PublishesWritten event. A DISCONNECT is left to paho (it closes the socket after).
        out = self._out_packet
        written: list[int] = []
        sent_any = False
        try:
            while out:
                parts: list[bytes | bytearray] = []
                size = 0
                for entry in out:
                    if (entry["command"] & 0xF0) == paho.DISCONNECT:
                        break
                    pos = entry["pos"]
                    parts.append(entry["packet"][pos:] if pos else entry["packet"])
                    size += entry["to_process"]
                    if size >= _WRITE_BATCH:
                        break
                if not parts:  # a DISCONNECT is next
                    return super()._packet_write()
                try:
                    sent = self._sock_send(parts[0] if len(parts) == 1 else b"".join(parts))
                except (AttributeError, ValueError):  # no socket (any more)
                    return paho.MQTT_ERR_SUCCESS
                except BlockingIOError:
                    return paho.MQTT_ERR_AGAIN
                except OSError:
                    return paho.MQTT_ERR_CONN_LOST
                sent_any = True
                while sent > 0:
                    entry = out[0]
                    done = min(sent, entry["to_process"])
                    entry["to_process"] -= done
                    entry["pos"] += done
                    sent -= done
                    if entry["to_process"]:
                        break
                    out.popleft()
                    if (entry["command"] & 0xF0) == paho.PUBLISH and entry["qos"] == 0:
                        written.append(entry["mid"])
                if out and out[0]["pos"]:
                    return paho.MQTT_ERR_SUCCESS  # the rest once the socket is writable again
            return paho.MQTT_ERR_SUCCESS
        finally:
            if sent_any:
                with self._msgtime_mutex:
                    self._last_msg_out = paho.time_func()
            if written:
                self.events(PublishesWritten(tuple(written)))

    def _handle_pubackcomp(self, cmd: Any) -> Any:
        # A PUBACK is usually the packet id alone, or with a reason code and no properties.
        # paho's decoder builds a Properties object and two ReasonCodes (each copying a
        # 60-entry table) per ack; the fast path hands on shared, read-only ones instead.
        packet = self._in_packet["packet"]
        if cmd != "PUBACK":
            return super()._handle_pubackcomp(cmd)
        reason_code = _plain_puback_code(packet, v5=self._protocol == paho.MQTTv5)
        if reason_code is None:  # properties, or a code PUBACK does not define: paho's way
            return super()._handle_pubackcomp(cmd)
        return self._puback_received((packet[0] << 8) | packet[1], reason_code)

    def _puback_received(self, mid: int, code: ReasonCode) -> Any:
        rc, ack = self._settle_puback(mid, code)
        if ack is not None:
            self.events(ack)
        return rc

    def _settle_puback(self, mid: int, code: ReasonCode) -> tuple[Any, PublishCompleted | None]:
        """A PUBACK without properties: its publish leaves paho's session (what paho's
        ``_do_on_publish`` does, without its callback locks) and the one held back for the
        in-flight window, if any, is sent; returns paho's code and what to tell the engine
        (None: paho held no such publish)."""
        with self._out_message_mutex:
            message = self._out_messages.pop(mid, None)
            if message is None:
                return paho.MQTT_ERR_SUCCESS, None
            rc = paho.MQTT_ERR_SUCCESS
            if message.qos:
                self._inflight_messages -= 1
                if self._max_inflight_messages > 0:
                    rc = self._update_inflight()
        return rc, PublishCompleted(mid, message.qos, code.value, _PUBACK_TEXTS[code.value])

    def _handle_pubrec(self) -> Any:
        from paho.mqtt import _packet

        result = _packet.decode_pubrec(
            self._in_packet["command"], self._in_packet["packet"], self._protocol
        )
        if result.reason is not None:
            self.events(PubrecReceived(result.mid, result.reason.value, str(result.reason)))
        return super()._handle_pubrec()


_PUBACK_CODES: dict[int, ReasonCode] = {
    code: ReasonCode(PacketTypes.PUBACK, identifier=code)
    for code in (0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)
}
"""One shared, read-only ReasonCode per code a PUBACK may carry (MQTT 5, 3.4.2.1)."""

_PUBACK_TEXTS = {value: reason_text(code) for value, code in _PUBACK_CODES.items()}
"""Each PUBACK code's name, as paho says it ("Success", "Quota exceeded", ...)."""

_PUBACK_SUCCESS = _PUBACK_CODES[0]
"""Success: the code of a PUBACK that is the packet id alone."""

_PINGREQ = bytes((paho.PINGREQ, 0))
"""A PINGREQ packet: its type and a zero remaining length."""

_NOBODY_WAITS = paho.MQTTMessageInfo(0)
"""Stands in for the per-message ``MQTTMessageInfo`` (with its ``threading.Condition``) that
paho's ``publish()`` hands its caller to wait on: paho marks it published once the packet is
written or acknowledged, and nobody here waits on it."""


def _session_message(
    mid: int, topic: bytes, payload: bytes, qos: int, retain: bool, properties: Properties | None
) -> paho.MQTTMessage:
    """paho's record of a QoS 1/2 publish in its session (``_out_messages``), as its
    ``publish()`` makes it, but sharing one ``MQTTMessageInfo``: ``MQTTMessage()`` builds one
    per message, with a ``threading.Condition``."""
    message: paho.MQTTMessage = object.__new__(paho.MQTTMessage)
    message.timestamp = paho.time_func()
    message.state = paho.mqtt_ms_invalid
    message.dup = False
    message.mid = mid
    message._topic = topic  # noqa: SLF001 - MQTTMessage's topic slot (its setter takes str)
    message.payload = payload
    message.qos = qos
    message.retain = retain
    message.info = _NOBODY_WAITS
    message.properties = properties
    return message


def _awaiting_pubrel(mid: int) -> paho.MQTTMessage:
    """paho's record of an incoming QoS 2 message already delivered, waiting for its PUBREL
    (paho then drops it and sends PUBCOMP; with no ``on_message`` it delivers nothing)."""
    record = paho.MQTTMessage(mid)
    record.qos = 2
    record.state = paho.mqtt_ms_wait_for_pubrel
    return record


def _plain_puback_code(packet: bytes | bytearray, *, v5: bool = True) -> ReasonCode | None:
    """The reason code of a PUBACK body without properties (packet id, then optionally a code
    and a zero property length), or None when it has properties or an undefined code. An MQTT
    3.1.1 PUBACK (``v5`` False) is the packet id alone: Success, as paho reports it."""
    size = len(packet)
    if size == 2:
        return _PUBACK_SUCCESS
    if v5 and (size == 3 or (size == 4 and packet[3] == 0)):
        return _PUBACK_CODES.get(packet[2])
    return None


_CLIENT = DisconnectSource.CLIENT

_UNASKED_AUTH = Refusal(
    0x82, "Protocol Error: the server sent AUTH, which this client never asks for"
)


def _decode_auth(body: bytes) -> AuthReceived:
    """An AUTH packet's body: no body is Success without properties (MQTT 5 3.15.2.1)."""
    if not body:
        return AuthReceived(0x00)
    code = body[0]
    if len(body) == 1:
        return AuthReceived(code)
    props = _properties(PacketTypes.AUTH)
    _, used = props.unpack(body[1:])  # type: ignore[no-untyped-call]
    if used != len(body) - 1:
        raise MalformedPacket(f"{len(body) - 1 - used} bytes after the properties")
    data = getattr(props, "AuthenticationData", None)
    return AuthReceived(
        code,
        method=getattr(props, "AuthenticationMethod", None),
        data=None if data is None else bytes(data),
        reason_string=getattr(props, "ReasonString", None),
    )


def _in_packet(
    command: int, length_bytes: list[int], multiplier: int, length: int, body: bytearray
) -> _InPacket:
    """paho's record of the packet being read (``Client._in_packet``), complete."""
    return {
        "command": command,
        "have_remaining": 1 if command else 0,
        "remaining_count": length_bytes,
        "remaining_mult": multiplier,
        "remaining_length": length,
        "packet": body,
        "to_process": 0,
        "pos": 0,
    }


def _is_connack_code(code: int) -> bool:
    names: Any = ReasonCode.names  # {code: {name: [packet types]}}
    return any(PacketTypes.CONNACK in packets for packets in names.get(code, {}).values())


def paho_seams_present() -> bool:
    """True when the paho internals the adapter relies on are all there (see ``_seam_check``)."""
    return not missing_paho_seams()
