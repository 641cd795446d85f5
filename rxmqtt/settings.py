"""Connection settings: where to connect, how to authenticate, TLS, Last Will.

Pure values, validated when built: a bad argument raises ``ValueError``/``TypeError`` whose message
starts with the argument's name. Secrets that rotate (password files, tokens, client certificates)
are re-read on every connection attempt through :meth:`ConnectionSettings.credentials`,
:meth:`ConnectionSettings.resolved_auth_data` and :meth:`TlsSettings.ssl_context`.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import secrets
import ssl
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from rxmqtt.message import PublishProperties, check_qos
from rxmqtt.topics import validate_topic

__all__ = [
    "K8S_SAT_AUTH_METHOD",
    "ConnectionSettings",
    "Endpoint",
    "FileSecret",
    "TlsSettings",
    "Will",
]

_log = logging.getLogger("rxmqtt")

K8S_SAT_AUTH_METHOD = "K8S-SAT"
"""MQTT 5 enhanced-authentication method of Azure IoT Operations' Kubernetes token auth."""

_MAX_UINT16 = 0xFFFF
_MAX_UINT32 = 0xFFFFFFFF
_DEFAULT_PORT = 1883
_DEFAULT_TLS_PORT = 8883
_MASK = "'***'"

SecretProvider = Callable[[], str | bytes]
"""A zero-argument callable returning a secret; called on every connection attempt."""

# ---------------------------------------------------------------------------------------------
# validation helpers (each message starts with the argument name)


def _check_int(value: object, argument: str, low: int, high: int, unit: str = "") -> int:
    """Return ``value`` if it is an int (not bool) in ``low..high``, else raise naming it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument}: must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{argument}: must be >= {low}{unit}, got {value}")
    if value > high:
        raise ValueError(f"{argument}: must be <= {high}{unit}, got {value}")
    return value


def _check_bool(value: object, argument: str) -> bool:
    """Return ``value`` if it is a bool, else raise ``TypeError`` naming ``argument``."""
    if not isinstance(value, bool):
        raise TypeError(f"{argument}: must be a bool, got {type(value).__name__}")
    return value


def _check_text(value: object, argument: str, *, allow_empty: bool = True) -> str:
    """Return ``value`` if it is a str that fits an MQTT UTF-8 string (<= 65535 bytes, no NUL)."""
    if not isinstance(value, str):
        raise TypeError(f"{argument}: must be a str, got {type(value).__name__}")
    if not value and not allow_empty:
        raise ValueError(f"{argument}: must not be empty")
    if "\x00" in value:
        raise ValueError(f"{argument}: must not contain the null character U+0000")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{argument}: must be valid UTF-8 (contains a lone surrogate)") from None
    if size > _MAX_UINT16:
        raise ValueError(f"{argument}: must be at most {_MAX_UINT16} UTF-8 bytes, got {size}")
    return value


def _check_path(value: object, argument: str) -> Path:
    """Return ``value`` as a ``Path`` to an existing regular file, else raise naming it."""
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"{argument}: must be a str or Path, got {type(value).__name__}")
    text = os.fspath(value)
    if not isinstance(text, str) or not text:
        raise ValueError(f"{argument}: must be a non-empty path")
    path = Path(text)
    if not path.exists():
        raise ValueError(f"{argument}: no such file: {path}")
    if not path.is_file():
        raise ValueError(f"{argument}: not a regular file: {path}")
    return path


def _check_secret(value: object, argument: str) -> str | bytes | SecretProvider:
    """Accept a str, bytes (bytearray/memoryview copied) or zero-argument callable."""
    if isinstance(value, bytearray | memoryview):
        value = bytes(value)
    if isinstance(value, str | bytes):
        try:
            size = len(value.encode("utf-8") if isinstance(value, str) else value)
        except UnicodeEncodeError:
            raise ValueError(f"{argument}: must be valid UTF-8") from None
        if size > _MAX_UINT16:
            raise ValueError(f"{argument}: must be at most {_MAX_UINT16} bytes, got {size}")
        return value
    if callable(value):
        return value
    raise TypeError(
        f"{argument}: must be str, bytes or a callable returning one, got {type(value).__name__}"
    )


def _check_host(value: object, argument: str) -> str:
    """Return a host name or IP address (IPv6 brackets removed), else raise naming it."""
    if not isinstance(value, str):
        raise TypeError(f"{argument}: must be a str, got {type(value).__name__}")
    host = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    if not host:
        raise ValueError(f"{argument}: must not be empty")
    if any(c.isspace() or c in "/?#@[]" or unicodedata.category(c) in ("Cc", "Cs") for c in host):
        raise ValueError(f"{argument}: invalid host {value!r}")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(
                f"{argument}: {value!r} is neither a host name nor an IPv6 address "
                "(give the port separately)"
            ) from None
    return host


def _strip_newline(data: bytes) -> bytes:
    """Remove one trailing newline (``\\n`` or ``\\r\\n``), as editors and ``echo`` add one."""
    if data.endswith(b"\r\n"):
        return data[:-2]
    if data.endswith(b"\n"):
        return data[:-1]
    return data


def _read_secret_file(path: Path, argument: str) -> bytes:
    """Read ``path`` now; an ``OSError`` (subclass kept) names ``argument`` and the path."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OSError(exc.errno, f"{argument}: {exc.strerror or exc}", str(path)) from exc
    return _strip_newline(data)


def _to_bytes(value: str | bytes, argument: str) -> bytes:
    """Encode a resolved secret; anything but str/bytes is a ``TypeError`` naming ``argument``."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    raise TypeError(f"{argument}: provider returned {type(value).__name__}, expected str or bytes")


# ---------------------------------------------------------------------------------------------
# value types


@dataclass(frozen=True, slots=True)
class FileSecret:
    """A secret provider that re-reads ``path`` on every call (rotating tokens, password files).

    Returns the file's bytes with one trailing newline removed; a read failure raises an
    ``OSError`` naming ``argument`` and the path (the connection turns it into a failed attempt).
    """

    path: Path
    argument: str = field(default="secret_file", compare=False)

    def __call__(self) -> bytes:
        """Read the secret now."""
        return _read_secret_file(Path(self.path), self.argument)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One broker address; ``str()`` gives ``host:port`` (``[v6]:port`` for IPv6)."""

    host: str
    port: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "host", _check_host(self.host, "host"))
        _check_int(self.port, "port", 1, 65535)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def parse(
        cls, text: str, *, default_port: int | None = None, argument: str = "endpoint"
    ) -> Endpoint:
        """Parse ``host:port``, ``[v6]:port``, or a bare host when ``default_port`` is given."""
        if not isinstance(text, str):
            raise TypeError(f"{argument}: must be an Endpoint or a str, got {type(text).__name__}")
        port_text: str | None
        if text.startswith("["):
            end = text.find("]")
            if end < 0:
                raise ValueError(f"{argument}: unbalanced '[' in {text!r}")
            host, rest = text[1:end], text[end + 1 :]
            if rest and not rest.startswith(":"):
                raise ValueError(f"{argument}: unexpected {rest!r} after ']' in {text!r}")
            port_text = rest[1:] if rest else None
        elif text.count(":") == 1:
            host, port_text = text.split(":")
        else:
            host, port_text = text, None  # a bare host, or a bare IPv6 address
        if port_text is None:
            if default_port is None:
                raise ValueError(f"{argument}: missing port in {text!r} (expected 'host:port')")
            port = default_port
        elif port_text.isascii() and port_text.isdigit():
            port = int(port_text)
        else:
            raise ValueError(f"{argument}: invalid port {port_text!r} in {text!r}")
        try:
            return cls(host, port)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{argument}: {exc}") from None


@dataclass(frozen=True, slots=True, repr=False)
class TlsSettings:
    """TLS for the broker connection; files are checked now and re-read on every attempt.

    ``ca_file`` ``None`` trusts the system's default CAs. ``cert_file`` (optionally with a
    separate ``key_file`` and its ``key_password``) enables X.509 client authentication.
    ``verify_certificate=False`` also disables the hostname check. ``server_hostname`` overrides
    the name sent in SNI and checked against the certificate (default: the endpoint's host).
    """

    ca_file: str | Path | None = None
    cert_file: str | Path | None = None
    key_file: str | Path | None = None
    key_password: str | bytes | SecretProvider | None = None
    verify_hostname: bool = True
    verify_certificate: bool = True
    server_hostname: str | None = None
    _warned: bool = field(default=False, init=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("ca_file", "cert_file", "key_file"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _check_path(value, name))
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file: requires cert_file")
        if self.key_password is not None:
            if self.cert_file is None:
                raise ValueError("key_password: requires cert_file")
            object.__setattr__(
                self, "key_password", _check_secret(self.key_password, "key_password")
            )
        _check_bool(self.verify_hostname, "verify_hostname")
        _check_bool(self.verify_certificate, "verify_certificate")
        if self.server_hostname is not None:
            _check_host(self.server_hostname, "server_hostname")

    def ssl_context(self) -> ssl.SSLContext:
        """A fresh client context (TLS >= 1.2) built by reading the files now.

        Called on every connection attempt so rotated certificates and keys take effect.
        Unreadable or malformed files raise ``OSError``/``ssl.SSLError`` naming the argument.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.ca_file is None:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        else:
            ca_file = str(self.ca_file)
            _load("ca_file", ca_file, lambda: context.load_verify_locations(cafile=ca_file))
        if self.cert_file is not None:
            cert_file = str(self.cert_file)
            key_file = None if self.key_file is None else str(self.key_file)
            password = self.key_password
            _load(
                "cert_file",
                cert_file if key_file is None else f"{cert_file} (key_file {key_file})",
                lambda: context.load_cert_chain(cert_file, key_file, password),
            )
        verify = self.verify_certificate
        context.check_hostname = verify and self.verify_hostname
        context.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
        if not (verify and self.verify_hostname) and not self._warned:
            object.__setattr__(self, "_warned", True)
            if not verify:
                _log.warning(
                    "TLS certificate verification is OFF: any server is accepted, "
                    "the broker's identity is not checked (do not use in production)"
                )
            else:
                _log.warning(
                    "TLS hostname verification is OFF: any certificate from a trusted CA is "
                    "accepted, whatever host it names (do not use in production)"
                )
        return context

    def __repr__(self) -> str:
        key_password = None if self.key_password is None else "***"
        parts = [
            f"ca_file={_path_repr(self.ca_file)}",
            f"cert_file={_path_repr(self.cert_file)}",
            f"key_file={_path_repr(self.key_file)}",
            f"key_password={key_password!r}",
            f"verify_hostname={self.verify_hostname!r}",
            f"verify_certificate={self.verify_certificate!r}",
            f"server_hostname={self.server_hostname!r}",
        ]
        return f"TlsSettings({', '.join(parts)})"


def _path_repr(value: str | Path | None) -> str:
    return repr(None if value is None else str(value))


def _load(argument: str, what: str, action: Callable[[], object]) -> None:
    """Run an ``ssl`` loading call, re-raising its failure with the argument and path."""
    try:
        action()
    except ssl.SSLError as exc:
        raise ssl.SSLError(exc.errno, f"{argument}: cannot load {what}: {exc}") from exc
    except OSError as exc:
        if exc.filename is not None:  # already names its file (e.g. a FileSecret password)
            raise
        raise OSError(exc.errno, f"{argument}: {exc.strerror or exc}", what) from exc


@dataclass(frozen=True, slots=True)
class Will:
    """The Last Will and Testament the broker publishes if the client vanishes ungracefully.

    ``delay_interval`` (seconds) lets a quick reconnect cancel it; a ``str`` payload is UTF-8.
    """

    topic: str
    payload: bytes | str = b""
    qos: int = 0
    retain: bool = False
    delay_interval: int = 0
    properties: PublishProperties = field(default_factory=PublishProperties)

    def __post_init__(self) -> None:
        validate_topic(self.topic, argument="will.topic")
        payload: object = self.payload
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        elif isinstance(payload, bytearray | memoryview):
            payload = bytes(payload)
        if not isinstance(payload, bytes):
            raise TypeError(f"will.payload: must be bytes or str, got {type(payload).__name__}")
        if len(payload) > _MAX_UINT16:
            raise ValueError(
                f"will.payload: must be at most {_MAX_UINT16} bytes, got {len(payload)}"
            )
        object.__setattr__(self, "payload", payload)
        check_qos(self.qos, "will.qos")
        _check_bool(self.retain, "will.retain")
        _check_int(self.delay_interval, "will.delay_interval", 0, _MAX_UINT32, " seconds")
        if not isinstance(self.properties, PublishProperties):
            raise TypeError(
                "will.properties: must be a PublishProperties, "
                f"got {type(self.properties).__name__}"
            )


# ---------------------------------------------------------------------------------------------
# ConnectionSettings

_SCHEMES: dict[str, bool] = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True, "tls": True}
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


def _parse_bool(text: str, argument: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{argument}: must be true, false, 1 or 0, got {text!r}")


def _parse_int(text: str, argument: str) -> int:
    stripped = text.strip()
    if not (stripped.isascii() and stripped.lstrip("-").isdigit()):
        raise ValueError(f"{argument}: must be an integer, got {text!r}")
    return int(stripped)


def _parse_float(text: str, argument: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{argument}: must be a number, got {text!r}") from None
    return value


@dataclass(frozen=True, slots=True, repr=False)
class ConnectionSettings:
    """Everything needed to (re)connect: endpoints, session, credentials, TLS, Last Will.

    ``port`` defaults to 8883 with ``tls`` and 1883 without. An empty ``client_id`` becomes
    ``rxmqtt-`` + 12 random hex digits, fixed for this object, so a persistent session resumes
    on every reconnect. ``password``/``password_file``/``auth_data`` may rotate: they are
    resolved on each attempt by :meth:`credentials` and :meth:`resolved_auth_data`.
    ``endpoints`` lists extra brokers for failover (``Endpoint`` or ``"host:port"``), tried
    after ``host:port`` in order.
    """

    host: str = "localhost"
    port: int | None = None
    client_id: str = ""
    keep_alive: int = 60
    session_expiry: int = 3600
    clean_start: bool = False
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

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "host", _check_host(self.host, "host"))
        if self.tls is not None and not isinstance(self.tls, TlsSettings):
            raise TypeError(f"tls: must be a TlsSettings or None, got {type(self.tls).__name__}")
        if self.port is None:
            set_(self, "port", _DEFAULT_TLS_PORT if self.tls is not None else _DEFAULT_PORT)
        else:
            _check_int(self.port, "port", 1, 65535)
        _check_text(self.client_id, "client_id")
        if not self.client_id:
            set_(self, "client_id", "rxmqtt-" + secrets.token_hex(6))
        _check_int(self.keep_alive, "keep_alive", 0, _MAX_UINT16, " seconds")
        _check_int(self.session_expiry, "session_expiry", 0, _MAX_UINT32, " seconds")
        _check_bool(self.clean_start, "clean_start")
        if self.username is not None:
            _check_text(self.username, "username")
        if self.password is not None:
            set_(self, "password", _check_secret(self.password, "password"))
        if self.password_file is not None:
            if self.password is not None:
                raise ValueError("password_file: cannot be combined with password (give one)")
            set_(self, "password_file", _check_path(self.password_file, "password_file"))
        if self.will is not None and not isinstance(self.will, Will):
            raise TypeError(f"will: must be a Will or None, got {type(self.will).__name__}")
        set_(self, "endpoints", self._parse_endpoints())
        self._check_timeout()
        if self.receive_maximum is not None:
            _check_int(self.receive_maximum, "receive_maximum", 1, _MAX_UINT16)
        if self.maximum_packet_size is not None:
            _check_int(self.maximum_packet_size, "maximum_packet_size", 1, _MAX_UINT32, " bytes")
        if self.auth_method is not None:
            _check_text(self.auth_method, "auth_method", allow_empty=False)
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

    def _check_timeout(self) -> None:
        value: object = self.connect_timeout
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"connect_timeout: must be a number, got {type(value).__name__}")
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"connect_timeout: must be > 0 seconds, got {value}")
        object.__setattr__(self, "connect_timeout", float(value))

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

    def resolved_auth_data(self) -> bytes | None:
        """The enhanced-authentication data for this attempt (provider called now)."""
        data = self.auth_data
        if data is None:
            return None
        value = data() if callable(data) else data
        if not isinstance(value, bytes | bytearray):
            raise TypeError(f"auth_data: provider returned {type(value).__name__}, expected bytes")
        return bytes(value)

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
        """Build settings from ``mqtt[s]://[user[:password]@]host[:port][?key=value&...]``.

        Schemes: ``mqtt``/``tcp`` (port 1883) and ``mqtts``/``ssl``/``tls`` (port 8883, TLS).
        User and password are URL-decoded. Query parameters: ``client_id``, ``keep_alive``,
        ``session_expiry``, ``clean_start``, ``connect_timeout``, and with a TLS scheme
        ``ca_file``, ``cert_file``, ``key_file``, ``verify_hostname``. Keyword ``overrides``
        win over anything in the URL.
        """
        if not isinstance(url, str):
            raise TypeError(f"url: must be a str, got {type(url).__name__}")
        try:
            parts = urlsplit(url.strip())
        except ValueError as exc:
            raise ValueError(f"url: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            if not scheme:
                raise ValueError("url: missing scheme (expected mqtt://, mqtts://, ...)")
            raise ValueError(
                f"url: unknown scheme {parts.scheme!r} (expected mqtt, mqtts, tcp, ssl or tls)"
            )
        use_tls = _SCHEMES[scheme]
        hostport = parts.netloc.rpartition("@")[2]  # never echo the userinfo: it holds secrets
        if not parts.hostname:
            raise ValueError("url: missing host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"url: invalid port in {hostport!r}") from None
        if parts.path not in ("", "/"):
            raise ValueError(f"url: unexpected path {parts.path!r}")
        if parts.fragment:
            raise ValueError(f"url: unexpected fragment {parts.fragment!r}")

        kwargs: dict[str, Any] = {"host": parts.hostname, "port": port}
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
            elif key in ("keep_alive", "session_expiry"):
                kwargs[key] = _parse_int(value, name)
            elif key == "clean_start":
                kwargs[key] = _parse_bool(value, name)
            elif key == "connect_timeout":
                kwargs[key] = _parse_float(value, name)
            elif key in ("ca_file", "cert_file", "key_file", "verify_hostname"):
                if not use_tls:
                    raise ValueError(f"{name} needs a TLS scheme (mqtts, ssl or tls)")
                tls_kwargs[key] = _parse_bool(value, name) if key == "verify_hostname" else value
            else:
                raise ValueError(f"url: unknown query parameter {key!r}")
        if use_tls and "tls" not in overrides:
            kwargs["tls"] = TlsSettings(**tls_kwargs)
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
        - ``AIO_MQTT_CLEAN_START``: ``true``/``false`` (default ``false``).
        - ``AIO_MQTT_KEEP_ALIVE``: keep-alive, seconds (default 60).
        - ``AIO_MQTT_CLIENT_ID``: client id (default: generated, stable for these settings).
        - ``AIO_MQTT_SESSION_EXPIRY``: session expiry interval, seconds (default 3600).
        - ``AIO_MQTT_USERNAME``: MQTT user name.
        - ``AIO_MQTT_PASSWORD_FILE``: file holding the password, re-read on every attempt.
        - ``AIO_TLS_CERT_FILE``: client certificate (PEM) for X.509 authentication.
        - ``AIO_TLS_KEY_FILE``: its private key (requires ``AIO_TLS_CERT_FILE``).
        - ``AIO_TLS_KEY_PASSWORD_FILE``: file holding the key's pass-phrase, re-read per attempt.
        - ``AIO_SAT_FILE``: Kubernetes service-account token file; enables MQTT 5 enhanced
          authentication with method ``K8S-SAT`` and the token (re-read on every attempt) as
          authentication data. Not combinable with ``AIO_MQTT_PASSWORD_FILE``.

        A missing host, a malformed number or boolean, or a missing file raises ``ValueError``
        naming the variable (and its value).
        """
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
            return None if text is None else _check_path(text, name)

        kwargs: dict[str, Any] = {}
        host = get("AIO_BROKER_HOSTNAME")
        if host is None and "host" not in overrides:
            raise ValueError("AIO_BROKER_HOSTNAME: required but not set")
        if host is not None:
            kwargs["host"] = _check_host(host, "AIO_BROKER_HOSTNAME")
        kwargs["port"] = get_int("AIO_BROKER_TCP_PORT", 1, 65535)
        use_tls = get_bool("AIO_MQTT_USE_TLS")
        use_tls = True if use_tls is None else use_tls
        clean_start = get_bool("AIO_MQTT_CLEAN_START")
        if clean_start is not None:
            kwargs["clean_start"] = clean_start
        for name, key, high in (
            ("AIO_MQTT_KEEP_ALIVE", "keep_alive", _MAX_UINT16),
            ("AIO_MQTT_SESSION_EXPIRY", "session_expiry", _MAX_UINT32),
        ):
            number = get_int(name, 0, high)
            if number is not None:
                kwargs[key] = number
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
        if sat_file is not None:
            kwargs["auth_method"] = K8S_SAT_AUTH_METHOD
            kwargs["auth_data"] = FileSecret(sat_file, "AIO_SAT_FILE")

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
        else:
            cert_file = tls_paths["cert_file"]
            for key in ("key_file", "key_password_file"):
                if tls_paths[key] is not None and cert_file is None:
                    raise ValueError(f"{tls_vars[key]}: requires AIO_TLS_CERT_FILE")
            key_password_file = tls_paths["key_password_file"]
            kwargs["tls"] = TlsSettings(
                ca_file=tls_paths["ca_file"],
                cert_file=cert_file,
                key_file=tls_paths["key_file"],
                key_password=(
                    None
                    if key_password_file is None
                    else FileSecret(key_password_file, "AIO_TLS_KEY_PASSWORD_FILE")
                ),
            )
        kwargs.update(overrides)
        return cls(**kwargs)
