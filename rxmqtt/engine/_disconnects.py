"""Why an attempt or a connection ended, as a :class:`Disconnect`: what the application reads on
``disconnects``, so each reason names the cause and, where there is one, the fix."""

from __future__ import annotations

import ssl

from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ..lifecycle import Disconnect, DisconnectSource
from ._convert import KEEP_ALIVE_TIMEOUT, PROTOCOL_ERROR, UNSPECIFIED_ERROR
from ._paho_client import _CERTIFICATE_ALERTS


def open_failure(error: Exception, endpoint: str, connect_timeout: float, now: float) -> Disconnect:
    """Opening the socket (address lookup, TCP connect, TLS handshake) failed with ``error``.
    A certificate the client cannot verify is fatal: retrying cannot fix it."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return Disconnect(
            UNSPECIFIED_ERROR,
            f"TLS certificate verification failed for {endpoint}: {error.verify_message or error}",
            DisconnectSource.NETWORK,
            fatal=True,
            at=now,
        )
    if isinstance(error, TimeoutError):
        return Disconnect(
            UNSPECIFIED_ERROR,
            f"connect to {endpoint} timed out after {connect_timeout}s",
            DisconnectSource.NETWORK,
            at=now,
        )
    return Disconnect(
        UNSPECIFIED_ERROR, f"cannot reach {endpoint}: {error}", DisconnectSource.NETWORK, at=now
    )


def connection_end(
    from_server: bool,
    reason_code: ReasonCode,
    properties: Properties | None,
    socket_error: OSError | None,
    now: float,
) -> Disconnect:
    """paho reported the link gone: the server's DISCONNECT (with its Reason String), the
    keep-alive watchdog, a packet we refused, a certificate the broker refused (fatal), or the
    socket closed or reset (``socket_error``: the last socket error paho saw)."""
    if from_server:
        reason = str(reason_code)
        server_says = getattr(properties, "ReasonString", None)
        if server_says:
            reason = f"{reason}: {server_says}"
        return Disconnect(
            reason_code.value,
            reason,
            DisconnectSource.SERVER,
            at=now,
            server_reference=getattr(properties, "ServerReference", None),
        )
    if reason_code.value == KEEP_ALIVE_TIMEOUT:
        return Disconnect(
            KEEP_ALIVE_TIMEOUT, "Keep alive timeout", DisconnectSource.KEEPALIVE, at=now
        )
    if reason_code.value == PROTOCOL_ERROR:
        return Disconnect(
            PROTOCOL_ERROR,
            "Protocol error: the broker sent a packet this client cannot accept",
            DisconnectSource.CLIENT,
            at=now,
        )
    if isinstance(socket_error, ssl.SSLError) and socket_error.reason in _CERTIFICATE_ALERTS:
        return Disconnect(
            UNSPECIFIED_ERROR,
            f"TLS: the broker refused this client's certificate ({socket_error.reason}); "
            "check cert_file/key_file and the CA the broker trusts",
            DisconnectSource.NETWORK,
            fatal=True,
            at=now,
        )
    return Disconnect(
        UNSPECIFIED_ERROR,
        "connection lost: the socket was closed or reset"
        + (f" ({socket_error})" if socket_error is not None else ""),
        DisconnectSource.NETWORK,
        at=now,
    )
