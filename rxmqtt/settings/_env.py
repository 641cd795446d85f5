"""Reading the Azure IoT Operations connection-settings environment variables."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .._checks import MAX_UINT16, MAX_UINT32, check_host, check_path
from ._k8s_sat import K8sSatAuthenticator
from ._protocol import MQTT_3_1_1, check_protocol_version
from ._secrets import FileSecret
from ._text import _parse_bool, _parse_int, _parse_list, _parse_optional_seconds
from ._tls import TlsSettings
from ._transport import WebSocketTransport, _check_transport

__all__ = ["_env_arguments"]


def _env_arguments(
    environ: Mapping[str, str] | None, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The keyword arguments the variables give (``overrides`` only excuse a missing host)."""
    env: Mapping[str, str] = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        value = env.get(name)
        return value if value else None

    def get_int(name: str, low: int, high: int) -> int | None:
        text = get(name)
        if text is None:
            return None
        value = _parse_int(text, name)
        if not low <= value <= high:
            raise ValueError(f"{name}: must be between {low} and {high}, got {text!r}")
        return value

    def get_bool(name: str) -> bool | None:
        text = get(name)
        return None if text is None else _parse_bool(text, name)

    def get_file(name: str) -> Path | None:
        text = get(name)
        return None if text is None else check_path(name, text)

    kwargs: dict[str, Any] = {}
    host = get("AIO_BROKER_HOSTNAME")
    if host is None and "host" not in overrides:
        raise ValueError("AIO_BROKER_HOSTNAME: required but not set")
    if host is not None:
        kwargs["host"] = check_host("AIO_BROKER_HOSTNAME", host)
    kwargs["port"] = get_int("AIO_BROKER_TCP_PORT", 1, 65535)
    use_tls = get_bool("AIO_MQTT_USE_TLS")
    use_tls = True if use_tls is None else use_tls
    clean_start = get_bool("AIO_MQTT_CLEAN_START")
    if clean_start is not None:
        kwargs["clean_start"] = clean_start
    for name, key, high in (
        ("AIO_MQTT_KEEP_ALIVE", "keep_alive", MAX_UINT16),
        ("AIO_MQTT_SESSION_EXPIRY", "session_expiry", MAX_UINT32),
    ):
        number = get_int(name, 0, high)
        if number is not None:
            kwargs[key] = number
    version = get("AIO_MQTT_PROTOCOL_VERSION")
    if version is not None:
        name = "AIO_MQTT_PROTOCOL_VERSION"
        kwargs["protocol_version"] = check_protocol_version(_parse_int(version, name), name)
    client_id = get("AIO_MQTT_CLIENT_ID")
    if client_id is not None:
        kwargs["client_id"] = client_id
    username = get("AIO_MQTT_USERNAME")
    if username is not None:
        kwargs["username"] = username
    password_file = get_file("AIO_MQTT_PASSWORD_FILE")
    sat_file = get_file("AIO_SAT_FILE")
    if password_file is not None and sat_file is not None:
        raise ValueError("AIO_SAT_FILE: cannot be combined with AIO_MQTT_PASSWORD_FILE")
    if password_file is not None:
        kwargs["password_file"] = password_file
    if kwargs.get("protocol_version") == MQTT_3_1_1:
        for name in ("AIO_SAT_FILE", "AIO_MQTT_SESSION_EXPIRY"):
            if get(name) is not None:
                raise ValueError(f"{name}: needs MQTT 5 (AIO_MQTT_PROTOCOL_VERSION is 4)")
    if sat_file is not None:
        kwargs["authenticator"] = K8sSatAuthenticator(sat_file, argument="AIO_SAT_FILE")

    kwargs.update(_rxmqtt_arguments(get))
    tls_vars = {
        "ca_file": "AIO_TLS_CA_FILE",
        "cert_file": "AIO_TLS_CERT_FILE",
        "key_file": "AIO_TLS_KEY_FILE",
        "key_password_file": "AIO_TLS_KEY_PASSWORD_FILE",
    }
    tls_paths = {key: get_file(name) for key, name in tls_vars.items()}
    if not use_tls:
        for key, path in tls_paths.items():
            if path is not None:
                raise ValueError(f"{tls_vars[key]}: set but AIO_MQTT_USE_TLS is false")
        for name in _TLS_EXTRAS.values():
            if get(name) is not None:
                raise ValueError(f"{name}: set but AIO_MQTT_USE_TLS is false")
    else:
        cert_file = tls_paths["cert_file"]
        for key in ("key_file", "key_password_file"):
            if tls_paths[key] is not None and cert_file is None:
                raise ValueError(f"{tls_vars[key]}: requires AIO_TLS_CERT_FILE")
        key_password_file = tls_paths["key_password_file"]
        kwargs["tls"] = TlsSettings(
            **_tls_extras(get),
            ca_file=tls_paths["ca_file"],
            cert_file=cert_file,
            key_file=tls_paths["key_file"],
            key_password=(
                None
                if key_password_file is None
                else FileSecret(key_password_file, "AIO_TLS_KEY_PASSWORD_FILE")
            ),
        )
    return kwargs


_TLS_EXTRAS = {
    "server_hostname": "RXMQTT_TLS_SERVER_HOSTNAME",
    "alpn_protocols": "RXMQTT_TLS_ALPN_PROTOCOLS",
}
"""rxmqtt's own TLS variables (the AIO set has none for these): TlsSettings field -> variable."""


def _rxmqtt_arguments(get: Callable[[str], str | None]) -> dict[str, Any]:
    """What rxmqtt's own ``RXMQTT_*`` variables give: the transport and Happy Eyeballs."""
    kwargs: dict[str, Any] = {}
    transport = get("RXMQTT_TRANSPORT")
    path = get("RXMQTT_WEBSOCKET_PATH")
    if transport is not None:
        kwargs["transport"] = _named("RXMQTT_TRANSPORT", _check_transport, transport.strip())
    if path is not None:
        if not isinstance(kwargs.get("transport"), WebSocketTransport):
            raise ValueError("RXMQTT_WEBSOCKET_PATH: requires RXMQTT_TRANSPORT=websockets")
        kwargs["transport"] = _named(
            "RXMQTT_WEBSOCKET_PATH", lambda text: WebSocketTransport(path=text), path
        )
    delay = get("RXMQTT_HAPPY_EYEBALLS_DELAY")
    if delay is not None:
        kwargs["happy_eyeballs_delay"] = _parse_optional_seconds(
            delay, "RXMQTT_HAPPY_EYEBALLS_DELAY"
        )
    return kwargs


def _tls_extras(get: Callable[[str], str | None]) -> dict[str, Any]:
    """The TlsSettings fields rxmqtt's own TLS variables give, checked under their names."""
    extras: dict[str, Any] = {}
    for key, name in _TLS_EXTRAS.items():
        text = get(name)
        if text is not None:
            value = _parse_list(text) if key == "alpn_protocols" else text
            extras[key] = _named(name, functools.partial(_checked_tls, key), value)
    return extras


def _checked_tls(key: str, value: Any) -> object:
    """``value`` once a TlsSettings with it alone has accepted it."""
    arguments: dict[str, Any] = {key: value}
    return getattr(TlsSettings(**arguments), key)


def _named(variable: str, build: Callable[[Any], Any], value: Any) -> Any:
    """``build(value)``, a ``ValueError``/``TypeError`` re-raised naming ``variable``."""
    try:
        return build(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{variable}: {exc}") from None
