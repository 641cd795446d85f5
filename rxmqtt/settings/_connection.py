"""Everything needed to (re)connect: :class:`ConnectionSettings` and its per-attempt secrets."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .._checks import (
    MAX_UINT16,
    MAX_UINT32,
    check_bool,
    check_host,
    check_int,
    check_path,
    check_positive_seconds,
    check_secret,
    check_text,
)
from ._authenticator import Authenticator, DataAuthenticator
from ._endpoint import Endpoint
from ._env import _env_arguments
from ._protocol import (
    MQTT5_NEEDED,
    MQTT_3_1_1,
    check_protocol_version,
    v311_refusal,
    v311_session_expiry,
)
from ._secrets import SecretProvider, _read_secret_file, _to_bytes
from ._tls import TlsSettings, _path_repr
from ._transport import TCP, WebSocketTransport, _check_transport
from ._url import _url_arguments
from ._will import Will

__all__ = ["ConnectionSettings"]

_DEFAULT_PORT = 1883
_DEFAULT_TLS_PORT = 8883
_DEFAULT_WS_PORT = 80
_DEFAULT_WSS_PORT = 443
_HAPPY_EYEBALLS_DELAY = 0.25
"""Seconds between starting connection attempts to a host's addresses (RFC 8305's default)."""
_MASK = "'***'"

NAMED_SESSION_EXPIRY = 3600
"""Seconds a named client's session outlives its connection unless ``session_expiry`` says."""


class _ByClientId:
    """The default of ``session_expiry`` and ``clean_start``: decided by whether a client id
    was given (the session rule in :class:`ConnectionSettings`)."""

    def __repr__(self) -> str:
        return "<by client id>"


_BY_CLIENT_ID: Any = _ByClientId()


@dataclass(frozen=True, slots=True, repr=False)
class ConnectionSettings:
    """Everything needed to (re)connect: endpoints, session, credentials, TLS, Last Will.

    ``port`` defaults to 8883 with ``tls`` and 1883 without (443 and 80 over WebSockets). An
    empty ``client_id`` becomes ``rxmqtt-`` + 12 random hex digits, fixed for this object.

    ``transport`` is ``"tcp"`` or a :class:`WebSocketTransport` (``"websockets"`` for its
    defaults: path ``/mqtt``); ``tls`` applies to either. ``happy_eyeballs_delay``: when a host
    name has several addresses, the next one is tried after this many seconds while the earlier
    attempts go on, IPv6 and IPv4 interleaved, and the first to connect wins (RFC 8305, as
    asyncio's ``create_connection``); ``None`` tries them one after another.
    ``connect_timeout`` bounds the whole opening (lookup, TCP, TLS, WebSocket upgrade).

    The session rule: ``clean_start`` and ``session_expiry`` default by whether you named the
    client, since only a client that comes back under the same id can resume a session.

    ======================  ===============  ==================
    ``client_id``           ``clean_start``  ``session_expiry``
    ======================  ===============  ==================
    given                   ``False``        3600 (one hour)
    not given (random id)   ``True``         0 (ends with the connection)
    ======================  ===============  ==================

    A value you pass always wins (e.g. ``session_expiry=600`` without a client id keeps the
    session across this object's reconnects). The rule is applied when the settings are built:
    ``dataclasses.replace(settings, client_id="x")`` keeps the session fields it had.
    ``password``/``password_file``/``auth_data`` may rotate: they are
    resolved on each attempt by :meth:`credentials` and :meth:`resolved_auth_data`.
    MQTT 5 enhanced authentication takes either ``auth_method`` (with ``auth_data``) or an
    ``authenticator`` (challenge rounds, re-authentication: see :class:`Authenticator`).
    ``endpoints`` lists extra brokers for failover (``Endpoint`` or ``"host:port"``), tried
    after ``host:port`` in order.

    ``protocol_version`` is 5 (MQTT 5, the default) or 4 (MQTT 3.1.1). MQTT 3.1.1 has a single
    session flag, Clean Session, set from ``clean_start`` on every attempt: ``True`` ends the
    session with each connection (``session_expiry`` 0), ``False`` has the broker keep it with
    no expiry (``session_expiry`` 4294967295, MQTT 5's "never"). With 4, the settings only MQTT
    5 can carry (another ``session_expiry``, ``receive_maximum``, ``maximum_packet_size``,
    ``auth_method``, the Will's ``delay_interval`` and ``properties``) raise ``ValueError``
    naming them.
    """

    host: str = "localhost"
    port: int | None = None
    client_id: str = ""
    keep_alive: int = 60
    session_expiry: int = _BY_CLIENT_ID
    clean_start: bool = _BY_CLIENT_ID
    tls: TlsSettings | None = None
    username: str | None = None
    password: str | bytes | SecretProvider | None = None
    password_file: str | Path | None = None
    will: Will | None = None
    endpoints: Sequence[Endpoint | str] = ()
    connect_timeout: float = 10.0
    receive_maximum: int | None = None
    maximum_packet_size: int | None = None
    auth_method: str | None = None
    auth_data: bytes | Callable[[], bytes] | None = None
    protocol_version: int = 5
    authenticator: Authenticator | None = None
    transport: str | WebSocketTransport = TCP
    happy_eyeballs_delay: float | None = _HAPPY_EYEBALLS_DELAY

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        check_protocol_version(self.protocol_version)
        v311 = self.protocol_version == MQTT_3_1_1
        set_(self, "host", check_host("host", self.host))
        if self.tls is not None and not isinstance(self.tls, TlsSettings):
            raise TypeError(f"tls: must be a TlsSettings or None, got {type(self.tls).__name__}")
        set_(self, "transport", _check_transport(self.transport))
        if self.port is None:
            set_(self, "port", self._default_port())
        else:
            check_int("port", self.port, 1, 65535)
        check_text("client_id", self.client_id)
        named = bool(self.client_id)
        if not named:
            set_(self, "client_id", "rxmqtt-" + secrets.token_hex(6))
        if self.clean_start is _BY_CLIENT_ID:
            set_(self, "clean_start", not named)
        check_bool("clean_start", self.clean_start)
        if self.session_expiry is _BY_CLIENT_ID:
            if v311:
                expiry = v311_session_expiry(self.clean_start)
            else:
                expiry = NAMED_SESSION_EXPIRY if named else 0
            set_(self, "session_expiry", expiry)
        check_int("keep_alive", self.keep_alive, 0, MAX_UINT16, " seconds")
        check_int("session_expiry", self.session_expiry, 0, MAX_UINT32, " seconds")
        if self.username is not None:
            check_text("username", self.username)
        if self.password is not None:
            set_(self, "password", check_secret("password", self.password))
        if self.password_file is not None:
            if self.password is not None:
                raise ValueError("password_file: cannot be combined with password (give one)")
            set_(self, "password_file", check_path("password_file", self.password_file))
        if self.will is not None and not isinstance(self.will, Will):
            raise TypeError(f"will: must be a Will or None, got {type(self.will).__name__}")
        set_(self, "endpoints", self._parse_endpoints())
        self._check_timeout()
        if self.happy_eyeballs_delay is not None:
            set_(
                self,
                "happy_eyeballs_delay",
                check_positive_seconds("happy_eyeballs_delay", self.happy_eyeballs_delay),
            )
        if self.receive_maximum is not None:
            check_int("receive_maximum", self.receive_maximum, 1, MAX_UINT16)
        if self.maximum_packet_size is not None:
            check_int("maximum_packet_size", self.maximum_packet_size, 1, MAX_UINT32, " bytes")
        if self.auth_method is not None:
            check_text("auth_method", self.auth_method, allow_empty=False)
        if self.auth_data is not None:
            if self.auth_method is None:
                raise ValueError("auth_data: requires auth_method")
            data: object = self.auth_data
            if isinstance(data, bytearray | memoryview):
                data = bytes(data)
            if not (isinstance(data, bytes) or callable(data)):
                raise TypeError(
                    "auth_data: must be bytes or a callable returning bytes, "
                    f"got {type(data).__name__}"
                )
            set_(self, "auth_data", data)
        if v311:
            refusal = v311_refusal(
                clean_start=self.clean_start,
                session_expiry=self.session_expiry,
                receive_maximum=self.receive_maximum,
                maximum_packet_size=self.maximum_packet_size,
                auth_method=self.auth_method,
                will=self.will,
            )
            if refusal is not None:
                raise ValueError(refusal)
        if self.authenticator is not None:
            self._check_authenticator()

    def _check_authenticator(self) -> None:
        authenticator: object = self.authenticator
        if not isinstance(authenticator, Authenticator):
            raise TypeError(
                "authenticator: must be an Authenticator (rxmqtt.settings), "
                f"got {type(authenticator).__name__}"
            )
        if self.auth_method is not None:
            raise ValueError("authenticator: cannot be combined with auth_method (give one)")
        if self.protocol_version == MQTT_3_1_1:
            raise ValueError(f"authenticator: {MQTT5_NEEDED} enhanced authentication")
        check_text("authenticator.method", authenticator.method, allow_empty=False)

    def _parse_endpoints(self) -> tuple[Endpoint, ...]:
        """Validate ``endpoints`` into Endpoints; a port-less string gets this ``port``."""
        raw: object = self.endpoints
        if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
            raise TypeError(
                "endpoints: must be a sequence of Endpoint or 'host:port' strings, "
                f"got {type(raw).__name__}"
            )
        parsed: list[Endpoint] = []
        for index, item in enumerate(raw):
            if isinstance(item, Endpoint):
                parsed.append(item)
            else:
                parsed.append(
                    Endpoint.parse(item, default_port=self.port, argument=f"endpoints[{index}]")
                )
        return tuple(parsed)

    def _default_port(self) -> int:
        if isinstance(self.transport, WebSocketTransport):
            return _DEFAULT_WSS_PORT if self.tls is not None else _DEFAULT_WS_PORT
        return _DEFAULT_TLS_PORT if self.tls is not None else _DEFAULT_PORT

    def _check_timeout(self) -> None:
        value = check_positive_seconds("connect_timeout", self.connect_timeout)
        object.__setattr__(self, "connect_timeout", value)

    # -- resolved on every connection attempt ---------------------------------------------

    def all_endpoints(self) -> tuple[Endpoint, ...]:
        """``host:port`` first, then ``endpoints``, without duplicates, in order."""
        port = self.port if self.port is not None else _DEFAULT_PORT  # resolved in __post_init__
        first = Endpoint(self.host, port)
        extra = (e for e in self.endpoints if isinstance(e, Endpoint))
        return tuple(dict.fromkeys((first, *extra)))

    def credentials(self) -> tuple[str | None, bytes | None]:
        """``(username, password)`` with the password resolved now.

        Calls the password provider or re-reads ``password_file`` (one trailing newline
        stripped), so rotating secrets work across reconnects. A file that cannot be read
        raises an ``OSError`` subclass naming the path.
        """
        if self.password_file is not None:
            return self.username, _read_secret_file(Path(self.password_file), "password_file")
        password = self.password
        if password is None:
            return self.username, None
        if callable(password):
            return self.username, _to_bytes(password(), "password")
        return self.username, _to_bytes(password, "password")

    def enhanced_authenticator(self) -> Authenticator | None:
        """Who does MQTT 5 enhanced authentication: ``authenticator``, or one made of
        ``auth_method`` and ``auth_data`` (it answers a challenge with the data again);
        ``None`` without either."""
        if self.authenticator is not None:
            return self.authenticator
        if self.auth_method is None:
            return None
        return DataAuthenticator(self.auth_method, self.auth_data)

    def resolved_auth_data(self) -> bytes | None:
        """The enhanced-authentication data for this attempt (provider called now)."""
        authenticator = self.enhanced_authenticator()
        return None if authenticator is None else authenticator.initial_data()

    def __repr__(self) -> str:
        parts: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("password", "auth_data") and value is not None:
                parts.append(f"{f.name}={_MASK}")
            elif f.name == "password_file":
                parts.append(f"password_file={_path_repr(value)}")
            else:
                parts.append(f"{f.name}={value!r}")
        return f"ConnectionSettings({', '.join(parts)})"

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> ConnectionSettings:
        """Build settings from ``scheme://[user[:password]@]host[:port][/path][?key=value&...]``.

        Schemes: ``mqtt``/``tcp`` (port 1883), ``mqtts``/``ssl``/``tls`` (port 8883, TLS),
        ``ws`` (MQTT over WebSockets, port 80) and ``wss`` (WebSockets over TLS, port 443);
        ``mqttv311`` and ``mqttv311s`` are ``mqtt`` and ``mqtts`` speaking MQTT 3.1.1
        (``protocol_version=4``). Only ``ws``/``wss`` take a path, the WebSocket path (default
        ``/mqtt``). User and password are URL-decoded. Query parameters: ``client_id``,
        ``keep_alive``, ``session_expiry``, ``clean_start``, ``connect_timeout``,
        ``receive_maximum``, ``protocol_version`` (5 or 4), ``happy_eyeballs_delay`` (seconds,
        or ``none``), ``sat_file`` (a Kubernetes service-account token file: ``K8S-SAT``
        enhanced authentication, a :class:`K8sSatAuthenticator`), and with a TLS scheme
        ``ca_file``, ``cert_file``, ``key_file``, ``verify_hostname``, ``server_hostname`` and
        ``alpn_protocols`` (comma-separated). Keyword ``overrides`` win over anything in the URL
        (``transport=WebSocketTransport(headers=...)`` for headers, or a path with a query).
        Without a ``client_id`` the id is random and the session clean, ending with the
        connection (the session rule above).
        """
        kwargs = _url_arguments(url, overrides)
        kwargs.update(overrides)
        return cls(**kwargs)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> ConnectionSettings:
        """Build settings from the Azure IoT Operations SDK connection-settings variables.

        ``environ`` defaults to ``os.environ``; empty variables count as unset; keyword
        ``overrides`` win. The variables:

        - ``AIO_BROKER_HOSTNAME`` (required): broker host name.
        - ``AIO_BROKER_TCP_PORT``: TCP port (default 8883 with TLS, 1883 without).
        - ``AIO_MQTT_USE_TLS``: ``true``/``false`` (default ``true``).
        - ``AIO_TLS_CA_FILE``: PEM file of CAs to trust (default: the system's CAs).
        - ``AIO_MQTT_CLEAN_START``: ``true``/``false`` (default: the session rule, ``false``
          for a named client).
        - ``AIO_MQTT_KEEP_ALIVE``: keep-alive, seconds (default 60).
        - ``AIO_MQTT_CLIENT_ID``: client id (default: generated, stable for these settings,
          with a session that ends with the connection).
        - ``AIO_MQTT_SESSION_EXPIRY``: session expiry interval, seconds (default: the session
          rule, 3600 for a named client, 0 without one).
        - ``AIO_MQTT_USERNAME``: MQTT user name.
        - ``AIO_MQTT_PASSWORD_FILE``: file holding the password, re-read on every attempt.
        - ``AIO_TLS_CERT_FILE``: client certificate (PEM) for X.509 authentication.
        - ``AIO_TLS_KEY_FILE``: its private key (requires ``AIO_TLS_CERT_FILE``).
        - ``AIO_TLS_KEY_PASSWORD_FILE``: file holding the key's pass-phrase, re-read per attempt.
        - ``AIO_MQTT_PROTOCOL_VERSION``: ``5`` (MQTT 5, the default) or ``4`` (MQTT 3.1.1); an
          rxmqtt addition for brokers other than AIO's (the AIO broker speaks MQTT 5).
        - ``AIO_SAT_FILE``: Kubernetes service-account token file; enables MQTT 5 enhanced
          authentication with method ``K8S-SAT`` (a :class:`K8sSatAuthenticator`): the token is
          re-read on every attempt, and when the file changes the connection re-authenticates
          with the new token without dropping the link. Not combinable with
          ``AIO_MQTT_PASSWORD_FILE``.

        rxmqtt's own variables, for what the AIO set does not cover:

        - ``RXMQTT_TRANSPORT``: ``tcp`` (default) or ``websockets``.
        - ``RXMQTT_WEBSOCKET_PATH``: the WebSocket path (default ``/mqtt``; needs
          ``RXMQTT_TRANSPORT=websockets``).
        - ``RXMQTT_TLS_SERVER_HOSTNAME``: the name for SNI and the certificate check.
        - ``RXMQTT_TLS_ALPN_PROTOCOLS``: comma-separated ALPN protocols.
        - ``RXMQTT_HAPPY_EYEBALLS_DELAY``: seconds between attempts to a host's addresses
          (default 0.25), or ``none`` to try them one after another.

        A missing host, a malformed number or boolean, or a missing file raises ``ValueError``
        naming the variable (and its value).
        """
        kwargs = _env_arguments(environ, overrides)
        kwargs.update(overrides)
        return cls(**kwargs)
