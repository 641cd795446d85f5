"""The transport and TLS-control settings: ``transport``/``WebSocketTransport``,
``happy_eyeballs_delay``, ``TlsSettings.alpn_protocols``/``context``; validated with errors that
name the argument (or the variable), read from URLs and the environment, and never showing a
header value, a path's query or a key password."""

from __future__ import annotations

import logging
import math
import re
import ssl
from pathlib import Path
from typing import Any

import pytest

from rxmqtt import ConnectionSettings, TlsSettings, WebSocketTransport

SECRET = "s3cr3t-value"


# ---------------------------------------------------------------- transport


def test_tcp_is_the_default_and_websockets_a_shorthand() -> None:
    assert ConnectionSettings().transport == "tcp"
    settings = ConnectionSettings(transport="websockets")
    assert settings.transport == WebSocketTransport(path="/mqtt", headers={})


@pytest.mark.parametrize(
    ("kwargs", "port"),
    [
        ({}, 1883),
        ({"tls": TlsSettings()}, 8883),
        ({"transport": "websockets"}, 80),
        ({"transport": "websockets", "tls": TlsSettings()}, 443),
        ({"transport": "websockets", "port": 9001}, 9001),
    ],
)
def test_the_default_port_follows_transport_and_tls(kwargs: dict[str, Any], port: int) -> None:
    assert ConnectionSettings(**kwargs).port == port


@pytest.mark.parametrize(
    ("transport", "error", "message"),
    [
        (
            "ws",
            ValueError,
            "transport: must be 'tcp', 'websockets' or a WebSocketTransport, got 'ws'",
        ),
        (
            None,
            TypeError,
            "transport: must be 'tcp', 'websockets' or a WebSocketTransport, got NoneType",
        ),
    ],
)
def test_a_bad_transport_is_named(transport: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        ConnectionSettings(transport=transport)  # type: ignore[arg-type]
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"path": "mqtt"}, ValueError, "path: must start with '/', got 'mqtt'"),
        ({"path": 3}, TypeError, "path: must be a str, got int"),
        ({"path": "/a b"}, ValueError, "path: must be printable ASCII without spaces"),
        ({"headers": [("a", "b")]}, TypeError, "headers: must be a mapping"),
        ({"headers": {"a b": "x"}}, ValueError, "headers: 'a b' is not a valid HTTP header name"),
        ({"headers": {"": "x"}}, ValueError, "headers: '' is not a valid HTTP header name"),
        ({"headers": {1: "x"}}, TypeError, "headers: a header name must be a str, got int"),
        ({"headers": {"Upgrade": "h2c"}}, ValueError, "headers: 'Upgrade' is set by the WebSocket"),
        (
            {"headers": {"sec-websocket-key": "x"}},
            ValueError,
            "headers: 'sec-websocket-key' is set by the WebSocket",
        ),
        ({"headers": {"X-A": "1", "x-a": "2"}}, ValueError, "headers: 'x-a' given twice"),
        ({"headers": {"X-A": 1}}, TypeError, "headers['X-A']: must be a str or a callable"),
        ({"headers": {"X-A": "a\r\nb"}}, ValueError, "headers['X-A']: the value must not contain"),
        ({"headers": {"X-A": "\u20ac"}}, ValueError, "headers['X-A']: the value must be Latin-1"),
    ],
)
def test_websocket_transport_errors_name_the_argument(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        WebSocketTransport(**kwargs)
    assert str(info.value).startswith(message)


def test_header_values_and_the_path_query_never_show() -> None:
    transport = WebSocketTransport(
        path=f"/mqtt?x-amz-signature={SECRET}", headers={"Authorization": f"Bearer {SECRET}"}
    )
    shown = repr(ConnectionSettings(transport=transport))
    assert SECRET not in shown
    assert "WebSocketTransport(path='/mqtt?***', headers={'Authorization': '***'})" in shown
    with pytest.raises(ValueError, match="path: must start with '/'") as info:
        WebSocketTransport(path=f"mqtt?sig={SECRET}")
    assert SECRET not in str(info.value)


def test_header_providers_are_resolved_per_call_and_checked_without_showing_the_value() -> None:
    values = iter(["Bearer one", "Bearer two", f"{SECRET}\r\nX: y", 42])
    transport = WebSocketTransport(headers={"Authorization": lambda: next(values)})
    assert transport.resolved_headers() == {"Authorization": "Bearer one"}
    assert transport.resolved_headers() == {"Authorization": "Bearer two"}
    with pytest.raises(ValueError, match="must not contain CR") as info:
        transport.resolved_headers()
    assert SECRET not in str(info.value)
    with pytest.raises(TypeError, match=r"headers\['Authorization'\]: provider returned int"):
        transport.resolved_headers()


def test_a_websocket_transport_is_a_frozen_hashable_value() -> None:
    one = WebSocketTransport(headers={"A": "1"})
    assert one == WebSocketTransport(headers={"A": "1"})
    assert hash(one) == hash(WebSocketTransport(headers={"A": "1"}))
    with pytest.raises(TypeError):
        one.headers["B"] = "2"  # type: ignore[index]


# ---------------------------------------------------------------- happy eyeballs


def test_happy_eyeballs_delay_defaults_to_rfc_8305_and_can_be_switched_off() -> None:
    assert ConnectionSettings().happy_eyeballs_delay == 0.25
    assert ConnectionSettings(happy_eyeballs_delay=None).happy_eyeballs_delay is None
    assert ConnectionSettings(happy_eyeballs_delay=1).happy_eyeballs_delay == 1.0


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (0, ValueError, "happy_eyeballs_delay: must be > 0 seconds, got 0"),
        (-1.0, ValueError, "happy_eyeballs_delay: must be > 0 seconds, got -1.0"),
        (math.inf, ValueError, "happy_eyeballs_delay: must be > 0 seconds, got inf"),
        (True, TypeError, "happy_eyeballs_delay: must be a number, got bool"),
        ("0.1", TypeError, "happy_eyeballs_delay: must be a number, got str"),
    ],
)
def test_a_bad_happy_eyeballs_delay_is_named(
    value: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        ConnectionSettings(happy_eyeballs_delay=value)  # type: ignore[arg-type]
    assert str(info.value) == message


# ---------------------------------------------------------------- TLS control


def test_alpn_protocols_become_a_tuple_and_reach_the_context() -> None:
    tls = TlsSettings(alpn_protocols=["x-amzn-mqtt-ca", "mqtt"])
    assert tls.alpn_protocols == ("x-amzn-mqtt-ca", "mqtt")
    assert "alpn_protocols=('x-amzn-mqtt-ca', 'mqtt')" in repr(tls)
    tls.ssl_context()  # accepted by OpenSSL


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("mqtt", TypeError, "alpn_protocols: must be a sequence of str such as ('mqtt',), got str"),
        ([b"mqtt"], TypeError, "alpn_protocols[0]: must be a str, got bytes"),
        (["mqtt", ""], ValueError, "alpn_protocols[1]: must be 1 to 255 printable ASCII"),
        (["x" * 256], ValueError, "alpn_protocols[0]: must be 1 to 255 printable ASCII"),
        (["m\u00e9"], ValueError, "alpn_protocols[0]: must be 1 to 255 printable ASCII"),
        (["mqtt", "mqtt"], ValueError, "alpn_protocols[1]: 'mqtt' is listed twice"),
    ],
)
def test_bad_alpn_protocols_are_named(value: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        TlsSettings(alpn_protocols=value)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)


def test_a_user_context_is_used_as_given_and_a_provider_called_each_time() -> None:
    context = ssl.create_default_context()
    assert TlsSettings(context=context).ssl_context() is context
    made: list[ssl.SSLContext] = []

    def provider() -> ssl.SSLContext:
        made.append(ssl.create_default_context())
        return made[-1]

    tls = TlsSettings(context=provider)
    assert tls.ssl_context() is made[0]
    assert tls.ssl_context() is made[1]
    assert "context=<provider>" in repr(tls)
    assert "context=<SSLContext>" in repr(TlsSettings(context=context))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"context": "ctx"}, TypeError, "context: must be an ssl.SSLContext or a callable"),
        (
            {"context": ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)},
            ValueError,
            "context: is a server-side SSLContext",
        ),
        ({"ca_file": "CA"}, ValueError, "context: cannot be combined with ca_file"),
        ({"key_password": "pw"}, ValueError, "key_password: requires cert_file"),
        (
            {"verify_hostname": False},
            ValueError,
            "context: cannot be combined with verify_hostname",
        ),
        (
            {"verify_certificate": False},
            ValueError,
            "context: cannot be combined with verify_certificate",
        ),
        (
            {"alpn_protocols": ["mqtt"]},
            ValueError,
            "alpn_protocols: cannot be combined with context",
        ),
    ],
)
def test_a_user_context_replaces_the_fields_it_would_contradict(
    kwargs: dict[str, Any], error: type[Exception], message: str, tmp_path: Path
) -> None:
    if kwargs.get("ca_file") == "CA":
        (tmp_path / "ca.pem").write_text("")
        kwargs = {"ca_file": tmp_path / "ca.pem"}
    arguments = {"context": ssl.create_default_context(), **kwargs}
    with pytest.raises(error) as info:
        TlsSettings(**arguments)
    assert str(info.value).startswith(message)


def test_a_provider_returning_no_context_fails_the_attempt_by_name() -> None:
    tls = TlsSettings(context=lambda: "not a context")  # type: ignore[arg-type,return-value]
    with pytest.raises(
        TypeError, match=r"context: provider returned str, expected ssl\.SSLContext"
    ):
        tls.ssl_context()


def test_a_user_context_without_verification_is_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    tls = TlsSettings(context=context)
    with caplog.at_level(logging.WARNING, logger="rxmqtt"):
        tls.ssl_context()
        tls.ssl_context()
    warnings = [r.getMessage() for r in caplog.records if "verification is OFF" in r.getMessage()]
    assert warnings == [
        "TLS certificate verification is OFF: any server is accepted, the broker's identity is "
        "not checked (do not use in production)"
    ]


# ---------------------------------------------------------------- from_url


@pytest.mark.parametrize(
    ("url", "port", "path", "tls"),
    [
        ("ws://broker", 80, "/mqtt", False),
        ("ws://broker/", 80, "/", False),
        ("ws://broker:9001/mqtt", 9001, "/mqtt", False),
        ("wss://broker", 443, "/mqtt", True),
        ("WSS://broker:8884/ws/v2", 8884, "/ws/v2", True),
    ],
)
def test_websocket_urls(url: str, port: int, path: str, tls: bool) -> None:
    settings = ConnectionSettings.from_url(url)
    assert settings.port == port
    assert settings.transport == WebSocketTransport(path=path)
    assert (settings.tls is not None) is tls


def test_url_query_parameters_for_tls_control_and_happy_eyeballs() -> None:
    settings = ConnectionSettings.from_url(
        "wss://u:pw@broker?server_hostname=broker.example&alpn_protocols=x-amzn-mqtt-ca,%20mqtt"
        "&happy_eyeballs_delay=0.1"
    )
    assert settings.tls is not None
    assert settings.tls.server_hostname == "broker.example"
    assert settings.tls.alpn_protocols == ("x-amzn-mqtt-ca", "mqtt")
    assert settings.happy_eyeballs_delay == 0.1
    assert (
        ConnectionSettings.from_url("mqtt://h?happy_eyeballs_delay=none").happy_eyeballs_delay
        is None
    )


def test_a_transport_override_wins_over_the_url() -> None:
    transport = WebSocketTransport(path="/custom", headers={"Authorization": SECRET})
    settings = ConnectionSettings.from_url("wss://broker/mqtt", transport=transport)
    assert settings.transport is transport
    assert settings.port == 443


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mqtt://h/mqtt", "url: unexpected path '/mqtt' (only ws:// and wss:// have one)"),
        ("ws://h?alpn_protocols=mqtt", "url: query parameter 'alpn_protocols' needs a TLS scheme"),
        ("ws://h?server_hostname=x", "url: query parameter 'server_hostname' needs a TLS scheme"),
        ("wss://h?alpn_protocols=a,,b", "alpn_protocols[1]: must be 1 to 255"),
        (
            "ws://h?happy_eyeballs_delay=soon",
            "url: query parameter 'happy_eyeballs_delay': must be a number",
        ),
        ("ws://h?happy_eyeballs_delay=0", "happy_eyeballs_delay: must be > 0 seconds, got 0.0"),
    ],
)
def test_url_errors(url: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        ConnectionSettings.from_url(url)


# ---------------------------------------------------------------- from_env


def env(**variables: str) -> dict[str, str]:
    return {"AIO_BROKER_HOSTNAME": "broker", **variables}


def test_rxmqtt_variables_set_the_transport_tls_control_and_happy_eyeballs() -> None:
    settings = ConnectionSettings.from_env(
        env(
            RXMQTT_TRANSPORT="websockets",
            RXMQTT_WEBSOCKET_PATH="/ws",
            RXMQTT_TLS_SERVER_HOSTNAME="broker.example",
            RXMQTT_TLS_ALPN_PROTOCOLS="x-amzn-mqtt-ca",
            RXMQTT_HAPPY_EYEBALLS_DELAY="0.5",
        )
    )
    assert settings.transport == WebSocketTransport(path="/ws")
    assert settings.port == 443  # TLS by default in the AIO set, over WebSockets
    assert settings.tls is not None
    assert settings.tls.server_hostname == "broker.example"
    assert settings.tls.alpn_protocols == ("x-amzn-mqtt-ca",)
    assert settings.happy_eyeballs_delay == 0.5
    plain = ConnectionSettings.from_env(env(RXMQTT_TRANSPORT="tcp", AIO_MQTT_USE_TLS="false"))
    assert plain.transport == "tcp"
    assert plain.port == 1883


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"RXMQTT_TRANSPORT": "ws"}, "RXMQTT_TRANSPORT: transport: must be 'tcp', 'websockets'"),
        (
            {"RXMQTT_WEBSOCKET_PATH": "/ws"},
            "RXMQTT_WEBSOCKET_PATH: requires RXMQTT_TRANSPORT=websockets",
        ),
        (
            {"RXMQTT_TRANSPORT": "websockets", "RXMQTT_WEBSOCKET_PATH": "ws"},
            "RXMQTT_WEBSOCKET_PATH: path: must start with '/'",
        ),
        ({"RXMQTT_TLS_ALPN_PROTOCOLS": "a,a"}, "RXMQTT_TLS_ALPN_PROTOCOLS: alpn_protocols[1]: 'a'"),
        (
            {"RXMQTT_TLS_SERVER_HOSTNAME": "a b"},
            "RXMQTT_TLS_SERVER_HOSTNAME: server_hostname: invalid",
        ),
        (
            {"AIO_MQTT_USE_TLS": "false", "RXMQTT_TLS_ALPN_PROTOCOLS": "mqtt"},
            "RXMQTT_TLS_ALPN_PROTOCOLS: set but AIO_MQTT_USE_TLS is false",
        ),
        ({"RXMQTT_HAPPY_EYEBALLS_DELAY": "x"}, "RXMQTT_HAPPY_EYEBALLS_DELAY: must be a number"),
    ],
)
def test_env_errors_name_the_variable(variables: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        ConnectionSettings.from_env(env(**variables))
