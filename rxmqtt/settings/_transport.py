"""How the bytes reach the broker: plain TCP (TLS or not), or MQTT over WebSockets."""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._secrets import SecretProvider

__all__ = ["TCP", "WebSocketTransport", "_check_transport"]

TCP = "tcp"
"""The default transport: MQTT straight over a TCP (or TLS) connection."""

_WEBSOCKETS = "websockets"
"""paho's name for MQTT over WebSockets, accepted as ``transport="websockets"``."""

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
"""The characters of an HTTP header name (RFC 9110 ``token``)."""

_HANDSHAKE_HEADERS = frozenset(
    {"upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "sec-websocket-accept"}
)
"""Headers the WebSocket handshake itself sets: overriding one would break the upgrade."""

_MASK = "***"


@dataclass(frozen=True, slots=True, repr=False)
class WebSocketTransport:
    """MQTT over WebSockets (RFC 6455, subprotocol ``mqtt``), as ``ws://`` and ``wss://`` URLs
    give; with ``ConnectionSettings.tls`` the WebSocket runs over TLS (``wss``).

    ``path`` is the HTTP request target of the upgrade (``/mqtt`` by default, as paho and most
    brokers use; it may carry a query, e.g. a pre-signed URL's). ``headers`` are extra request
    headers, e.g. ``{"Authorization": "Bearer ..."}``; a value may be a zero-argument callable,
    called on every connection attempt (a rotating token). Header values and the path's query
    may be secrets: they never appear in a repr, a log line or an error.
    """

    path: str = "/mqtt"
    headers: Mapping[str, str | SecretProvider] = field(default_factory=dict)

    def __post_init__(self) -> None:
        path: object = self.path
        if not isinstance(path, str):
            raise TypeError(f"path: must be a str, got {type(path).__name__}")
        if not path.startswith("/"):
            raise ValueError(f"path: must start with '/', got {_path_repr(path)}")
        if not path.isascii() or any(c.isspace() or not c.isprintable() for c in path):
            raise ValueError(
                f"path: must be printable ASCII without spaces (percent-encode the rest), "
                f"got {_path_repr(path)}"
            )
        headers: object = self.headers
        if not isinstance(headers, Mapping):
            raise TypeError(
                f"headers: must be a mapping of name to value, got {type(headers).__name__}"
            )
        seen: set[str] = set()
        for name, value in headers.items():
            _check_header_name(name)
            if name.lower() in seen:
                raise ValueError(f"headers: {name!r} given twice (names are case-insensitive)")
            seen.add(name.lower())
            if isinstance(value, str):
                _check_header_value(name, value)
            elif not callable(value):
                raise TypeError(
                    f"headers[{name!r}]: must be a str or a callable returning one, "
                    f"got {type(value).__name__}"
                )
        object.__setattr__(self, "headers", types.MappingProxyType(dict(headers)))

    def resolved_headers(self) -> dict[str, str]:
        """The extra headers for this attempt, providers called now."""
        resolved: dict[str, str] = {}
        for name, value in self.headers.items():
            text: object = value() if callable(value) else value
            if isinstance(text, bytes):
                text = text.decode("latin-1")
            if not isinstance(text, str):
                raise TypeError(
                    f"headers[{name!r}]: provider returned {type(text).__name__}, expected str"
                )
            _check_header_value(name, text)
            resolved[name] = text
        return resolved

    def __repr__(self) -> str:
        headers = {name: _MASK for name in self.headers}
        return f"WebSocketTransport(path={_path_repr(self.path)}, headers={headers!r})"

    def __hash__(self) -> int:
        return hash((self.path, tuple(self.headers)))


def _path_repr(path: str) -> str:
    """The path as shown to people: a query (which may hold a signature) is masked."""
    base, question, _ = path.partition("?")
    return repr(base + (f"?{_MASK}" if question else ""))


def _check_header_name(name: object) -> None:
    if not isinstance(name, str):
        raise TypeError(f"headers: a header name must be a str, got {type(name).__name__}")
    if not name or not set(name) <= _TOKEN_CHARS:
        raise ValueError(f"headers: {name!r} is not a valid HTTP header name")
    if name.lower() in _HANDSHAKE_HEADERS:
        raise ValueError(f"headers: {name!r} is set by the WebSocket handshake itself")


def _check_header_value(name: str, value: str) -> None:
    """A value must fit one header line; the error never shows it (it may be a secret)."""
    if any(c in value for c in "\r\n\x00"):
        raise ValueError(f"headers[{name!r}]: the value must not contain CR, LF or NUL")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(
            f"headers[{name!r}]: the value must be Latin-1 text (encode anything else)"
        ) from None


def _check_transport(value: Any) -> str | WebSocketTransport:
    """``"tcp"``, a :class:`WebSocketTransport`, or ``"websockets"`` (its defaults)."""
    if isinstance(value, WebSocketTransport):
        return value
    if isinstance(value, str):
        if value == TCP:
            return TCP
        if value == _WEBSOCKETS:
            return WebSocketTransport()
        raise ValueError(
            f"transport: must be {TCP!r}, {_WEBSOCKETS!r} or a WebSocketTransport, got {value!r}"
        )
    raise TypeError(
        f"transport: must be {TCP!r}, {_WEBSOCKETS!r} or a WebSocketTransport, "
        f"got {type(value).__name__}"
    )
