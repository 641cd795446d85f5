"""paho's client with the seams the engine needs, and the check that they still exist.

Every override here leans on a paho internal; ``paho_seams_present()`` lists them and a test
fails loudly, naming the paho version, when one goes missing.
"""

from __future__ import annotations

import importlib.metadata
import socket
import ssl
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from ..lifecycle import DisconnectSource

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


class _PahoClient(paho.Client):
    """paho's client with two seams: the socket comes from us (opened asynchronously), and the
    PUBREC reason code is kept (paho drops it) so QoS 2 results carry the broker's verdict."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rx_prepared_socket: socket.socket | ssl.SSLSocket | None = None
        self.rx_pubrec_codes: dict[int, tuple[int, str]] = {}
        self.rx_after_connack: Callable[[], None] | None = None
        """Run once paho has handled a CONNACK, after it re-sent the session's messages."""
        self.rx_maximum_packet_size: int | None = None
        """The Maximum Packet Size this client announced in CONNECT (enforced on input)."""
        self.rx_violation: tuple[int, str, DisconnectSource] | None = None
        """Why this client dropped the link over a packet it refused (code, reason, source)."""
        self.rx_socket_error: OSError | None = None
        """The last error of paho's socket I/O (paho logs it and reports only "conn lost")."""

    def _sock_recv(self, bufsize: int) -> bytes:
        try:
            return super()._sock_recv(bufsize)
        except BlockingIOError:
            raise
        except OSError as exc:
            self.rx_socket_error = exc
            raise

    def _sock_send(self, buf: bytes | bytearray) -> int:
        try:
            return super()._sock_send(buf)
        except BlockingIOError:
            raise
        except OSError as exc:
            self.rx_socket_error = exc
            raise

    def _create_socket(self) -> Any:
        sock = self.rx_prepared_socket
        self.rx_prepared_socket = None
        if sock is None:
            raise ConnectionError("rxmqtt engine: no prepared socket for this attempt")
        return sock

    def _handle_connack(self) -> Any:
        packet = self._in_packet["packet"]
        if self._protocol == paho.MQTTv5 and len(packet) >= 2 and not _is_connack_code(packet[1]):
            code = packet[1]
            if code >= 0x80:  # a refusal MQTT 5 does not define: keep the broker's code
                return self._refuse(
                    code,
                    f"the broker refused the connection with unknown reason code 0x{code:02X}",
                    DisconnectSource.SERVER,
                )
        # paho calls on_connect *before* it re-sends the session's unacknowledged PUBLISH and
        # PUBREL packets, so anything the owner publishes from on_connect (the offline queue's
        # drain) would overtake them [MQTT-4.6.0-1]. The owner's CONNACK handling runs after.
        rc = super()._handle_connack()
        hook, self.rx_after_connack = self.rx_after_connack, None
        if hook is not None:
            hook()
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

    def _refuse(self, code: int, reason: str, source: DisconnectSource) -> Any:
        self.rx_violation = (code, reason, source)
        return paho.MQTT_ERR_PROTOCOL

    def _incoming_size(self) -> int:
        packet = self._in_packet
        return 1 + len(packet["remaining_count"]) + int(packet["remaining_length"])

    def _incoming_too_large(self) -> bool:
        limit = self.rx_maximum_packet_size
        return (
            limit is not None
            and bool(self._in_packet["have_remaining"])
            and self._incoming_size() > limit
        )

    def _packet_read(self) -> Any:
        rc = super()._packet_read()
        if rc == paho.MQTT_ERR_AGAIN and self._incoming_too_large():  # still arriving
            return self._packet_too_large()
        return rc

    def _packet_handle(self) -> Any:
        if self._incoming_too_large():  # arrived whole in one read
            return self._packet_too_large()
        return super()._packet_handle()

    def _packet_too_large(self) -> Any:
        return self._refuse(
            0x95,
            f"Packet too large: the broker sent a {self._incoming_size()}-byte packet, over the "
            f"maximum_packet_size of {self.rx_maximum_packet_size} this client announced",
            DisconnectSource.CLIENT,
        )

    def _handle_publish(self) -> Any:
        # A topic that is not well-formed UTF-8 makes the packet malformed (MQTT 5 1.5.4): close
        # the connection instead of acknowledging the message and then dropping it.
        packet = self._in_packet["packet"]
        topic = bytes(packet[2 : 2 + int.from_bytes(packet[:2], "big")])
        try:
            topic.decode("utf-8")
        except UnicodeDecodeError:
            return self._refuse(
                0x81,
                f"Malformed Packet: a PUBLISH topic is not valid UTF-8: {topic!r}",
                DisconnectSource.CLIENT,
            )
        return super()._handle_publish()

    def _handle_pubrec(self) -> Any:
        from paho.mqtt import _packet

        result = _packet.decode_pubrec(
            self._in_packet["command"], self._in_packet["packet"], self._protocol
        )
        if result.reason is not None:
            self.rx_pubrec_codes[result.mid] = (result.reason.value, str(result.reason))
        return super()._handle_pubrec()


_CERTIFICATE_ALERTS = frozenset(
    {
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "TLSV1_ALERT_UNKNOWN_CA",
        "TLSV1_ALERT_ACCESS_DENIED",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
    }
)
"""TLS alerts by which a broker refuses this client's certificate. Under TLS 1.3 the client's
handshake completes first, so they arrive on the first read, not in ``do_handshake``."""


def _is_connack_code(code: int) -> bool:
    names: Any = ReasonCode.names  # {code: {name: [packet types]}}
    return any(PacketTypes.CONNACK in packets for packets in names.get(code, {}).values())


def paho_seams_present() -> bool:
    """True when the paho internals the engine relies on still exist (checked by a test)."""
    try:
        from paho.mqtt import _packet
    except ImportError:
        return False
    return (
        hasattr(paho.Client, "_create_socket")
        and hasattr(paho.Client, "_handle_pubrec")
        and hasattr(paho.Client, "_handle_connack")
        and hasattr(paho.Client, "_handle_publish")
        and hasattr(paho.Client, "_packet_read")
        and hasattr(paho.Client, "_packet_handle")
        and hasattr(paho.Client, "_messages_reconnect_reset_out")
        and hasattr(paho.Client, "_check_clean_session")
        and hasattr(paho, "mqtt_ms_resend_pubrel")
        and hasattr(paho.Client, "_sock_recv")
        and hasattr(paho.Client, "_sock_send")
        and hasattr(_packet, "decode_pubrec")
    )
