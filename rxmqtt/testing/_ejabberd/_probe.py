"""A raw MQTT 5 CONNECT/CONNACK round trip: the harness's readiness check for ejabberd.

An open port does not prove that ``mod_mqtt`` serves and accepts the harness's credentials; a
successful CONNACK does. The harness never imports paho, so the few bytes are written by hand.
"""

from __future__ import annotations

import contextlib
import secrets
import socket

from rxmqtt.testing._raw import mqtt_str, packet


def probe_connack(host: str, port: int, username: str, password: str, timeout: float) -> int:
    """Send an MQTT 5 CONNECT, return the CONNACK reason code (raises OSError on no answer)."""
    client_id = f"rxmqtt-probe-{secrets.token_hex(4)}"
    body = (
        b"\x00\x04MQTT\x05\xc2\x00\x0a\x00"  # MQTT 5, user+password+clean start, 10 s, no props
        + mqtt_str(client_id)
        + mqtt_str(username)
        + mqtt_str(password)
    )
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(packet(0x10, body))
        head = sock.recv(4)
        if len(head) < 4 or head[0] != 0x20:
            raise ConnectionError(f"no CONNACK (got {head!r})")
        code = head[3]
        with contextlib.suppress(OSError):
            sock.sendall(b"\xe0\x00")  # DISCONNECT, normal
        return code
