"""Why an attempt or connection ended (rxmqtt.engine._disconnects): each cause reads as what an
operator needs, and only what retrying cannot fix is fatal."""

from __future__ import annotations

import ssl

import pytest

from rxmqtt import DisconnectSource
from rxmqtt.engine._adapter_events import LinkClosed
from rxmqtt.engine._disconnects import connection_end, open_failure

_NAMES = {0x80: "Unspecified error", 0x82: "Protocol error", 0x8B: "Server shutting down"}
_NAMES[0x8D] = "Keep alive timeout"


def _closed(code: int, *, from_server: bool = False, says: str | None = None) -> LinkClosed:
    """What the paho adapter reports when paho finds the link gone."""
    return LinkClosed(from_server, code, _NAMES[code], says, None)


def test_an_unverifiable_certificate_is_fatal_and_says_why() -> None:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "self-signed certificate"
    failure = open_failure(error, "broker:8883", 5.0, now=12.0)
    assert failure.fatal
    assert failure.source is DisconnectSource.NETWORK
    assert (
        failure.reason
        == "TLS certificate verification failed for broker:8883: self-signed certificate"
    )
    assert failure.at == 12.0


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (TimeoutError(), "connect to broker:1883 timed out after 2.5s"),
        (
            ConnectionRefusedError(111, "Connection refused"),
            "cannot reach broker:1883: [Errno 111] Connection refused",
        ),
    ],
)
def test_unreachable_brokers_are_retried(error: Exception, reason: str) -> None:
    failure = open_failure(error, "broker:1883", 2.5, now=0.0)
    assert not failure.fatal
    assert (failure.reason_code, failure.reason) == (0x80, reason)


def test_a_server_disconnect_keeps_its_code_and_reason_string() -> None:
    end = connection_end(_closed(0x8B, from_server=True, says="maintenance"), None, now=1.0)
    assert (end.reason_code, end.reason, end.source) == (
        0x8B,
        "Server shutting down: maintenance",
        DisconnectSource.SERVER,
    )


def test_keep_alive_and_protocol_errors_name_their_source() -> None:
    keep_alive = connection_end(_closed(0x8D), None, now=0.0)
    assert (keep_alive.source, keep_alive.reason) == (
        DisconnectSource.KEEPALIVE,
        "Keep alive timeout",
    )
    refused = connection_end(_closed(0x82), None, now=0.0)
    assert refused.source is DisconnectSource.CLIENT
    assert refused.reason.startswith("Protocol error")


def test_a_refused_client_certificate_is_fatal() -> None:
    alert = ssl.SSLError(1, "alert")
    alert.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    end = connection_end(_closed(0x80), alert, now=0.0)
    assert end.fatal
    assert "refused this client's certificate (TLSV13_ALERT_CERTIFICATE_REQUIRED)" in end.reason


def test_a_reset_socket_is_a_retriable_network_loss() -> None:
    end = connection_end(_closed(0x80), ConnectionResetError(104, "reset"), now=0.0)
    assert not end.fatal
    assert end.source is DisconnectSource.NETWORK
    assert end.reason == "connection lost: the socket was closed or reset ([Errno 104] reset)"
