"""Parsing ``mqtt[s]://``, ``ws[s]://`` (and ``mqttv311[s]://``) URLs into
:class:`ConnectionSettings` keyword arguments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ._k8s_sat import K8sSatAuthenticator
from ._protocol import MQTT_3_1_1, check_protocol_version
from ._text import _parse_bool, _parse_float, _parse_int, _parse_list, _parse_optional_seconds
from ._tls import TlsSettings
from ._transport import WebSocketTransport

__all__ = ["_url_arguments"]

_SCHEMES: dict[str, bool] = {
    "mqtt": False,
    "tcp": False,
    "ws": False,
    "mqtts": True,
    "ssl": True,
    "tls": True,
    "wss": True,
}
"""Scheme -> whether it means TLS."""

_WEBSOCKET_SCHEMES = frozenset({"ws", "wss"})

_TLS_PARAMETERS = frozenset(
    {"ca_file", "cert_file", "key_file", "verify_hostname", "server_hostname", "alpn_protocols"}
)

_V311_SCHEMES = {"mqttv311": "mqtt", "mqttv311s": "mqtts"}
"""Schemes that choose MQTT 3.1.1 (``protocol_version=4``), and the scheme they otherwise are."""


def _url_arguments(url: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments ``url`` gives (``overrides`` only decides whether TLS is built)."""
    if not isinstance(url, str):
        raise TypeError(f"url: must be a str, got {type(url).__name__}")
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise ValueError(f"url: {exc}") from None
    scheme = parts.scheme.lower()
    v311_scheme = scheme in _V311_SCHEMES
    scheme = _V311_SCHEMES.get(scheme, scheme)
    if scheme not in _SCHEMES:
        if not scheme:
            raise ValueError("url: missing scheme (expected mqtt://, mqtts://, ...)")
        raise ValueError(
            f"url: unknown scheme {parts.scheme!r} "
            "(expected mqtt, mqtts, tcp, ssl, tls, ws, wss, mqttv311 or mqttv311s)"
        )
    use_tls = _SCHEMES[scheme]
    websocket = scheme in _WEBSOCKET_SCHEMES
    hostport = parts.netloc.rpartition("@")[2]  # never echo the userinfo: it holds secrets
    if not parts.hostname:
        raise ValueError("url: missing host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"url: invalid port in {hostport!r}") from None
    if parts.path not in ("", "/") and not websocket:
        raise ValueError(f"url: unexpected path {parts.path!r} (only ws:// and wss:// have one)")
    if parts.fragment:
        raise ValueError(f"url: unexpected fragment {parts.fragment!r}")

    kwargs: dict[str, Any] = {"host": parts.hostname, "port": port}
    if v311_scheme:
        kwargs["protocol_version"] = MQTT_3_1_1
    if parts.username:
        kwargs["username"] = unquote(parts.username)
    if parts.password:
        kwargs["password"] = unquote(parts.password)
    tls_kwargs: dict[str, Any] = {}
    seen: set[str] = set()
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        name = f"url: query parameter {key!r}"
        if key in seen:
            raise ValueError(f"{name} given more than once")
        seen.add(key)
        if key == "client_id":
            kwargs[key] = value
        elif key in ("keep_alive", "session_expiry", "receive_maximum"):
            kwargs[key] = _parse_int(value, name)
        elif key == "clean_start":
            kwargs[key] = _parse_bool(value, name)
        elif key == "connect_timeout":
            kwargs[key] = _parse_float(value, name)
        elif key == "happy_eyeballs_delay":
            kwargs[key] = _parse_optional_seconds(value, name)
        elif key == "protocol_version":
            version = check_protocol_version(_parse_int(value, name), name)
            if v311_scheme and version != MQTT_3_1_1:
                raise ValueError(f"{name}: {version} contradicts the scheme {parts.scheme!r}")
            kwargs[key] = version
        elif key == "sat_file":
            kwargs["authenticator"] = K8sSatAuthenticator(value, argument=name)
        elif key in _TLS_PARAMETERS:
            if not use_tls:
                raise ValueError(f"{name} needs a TLS scheme (mqtts, ssl, tls, wss or mqttv311s)")
            tls_kwargs[key] = _tls_value(key, value, name)
        else:
            raise ValueError(f"url: unknown query parameter {key!r}")
    if use_tls and "tls" not in overrides:
        kwargs["tls"] = TlsSettings(**tls_kwargs)
    if websocket and "transport" not in overrides:
        kwargs["transport"] = WebSocketTransport(path=parts.path or "/mqtt")
    return kwargs


def _tls_value(key: str, value: str, name: str) -> object:
    if key == "verify_hostname":
        return _parse_bool(value, name)
    if key == "alpn_protocols":
        return _parse_list(value)
    return value
