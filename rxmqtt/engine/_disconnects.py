"""Why an attempt or a connection ended, as a :class:`Disconnect`: what the application reads on
``disconnects``, so each reason names the cause and, where there is one, the fix."""

from __future__ import annotations

import ssl

from ..lifecycle import Disconnect, DisconnectSource
from ._adapter_events import LinkClosed

# Reason codes for losses that carry no MQTT packet (socket errors); see Disconnect.reason.
UNSPECIFIED_ERROR = 0x80
PROTOCOL_ERROR = 0x82
KEEP_ALIVE_TIMEOUT = 0x8D
PACKET_ID_NOT_FOUND = 0x92

CERTIFICATE_ALERTS = frozenset(
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


def connection_end(closed: LinkClosed, socket_error: OSError | None, now: float) -> Disconnect:
    """paho reported the link gone: the server's DISCONNECT (with its Reason String), the
    keep-alive watchdog, a packet we refused, a certificate the broker refused (fatal), or the
    socket closed or reset (``socket_error``: the last socket error paho saw)."""
    if closed.from_server:
        reason = closed.reason
        if closed.reason_string:
            reason = f"{reason}: {closed.reason_string}"
        return Disconnect(
            closed.reason_code,
            reason,
            DisconnectSource.SERVER,
            at=now,
            server_reference=closed.server_reference,
        )
    if closed.reason_code == KEEP_ALIVE_TIMEOUT:
        return Disconnect(
            KEEP_ALIVE_TIMEOUT, "Keep alive timeout", DisconnectSource.KEEPALIVE, at=now
        )
    if closed.reason_code == PROTOCOL_ERROR:
        return Disconnect(
            PROTOCOL_ERROR,
            "Protocol error: the broker sent a packet this client cannot accept",
            DisconnectSource.CLIENT,
            at=now,
        )
    if isinstance(socket_error, ssl.SSLError) and socket_error.reason in CERTIFICATE_ALERTS:
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
