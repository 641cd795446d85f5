"""TLS settings: CA, client certificate and key, checked when built and re-read per attempt."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._checks import check_bool, check_host, check_path, check_secret
from ._secrets import SecretProvider

__all__ = ["TlsSettings", "_path_repr"]

_log = logging.getLogger("rxmqtt")


@dataclass(frozen=True, slots=True, repr=False)
class TlsSettings:
    """TLS for the broker connection; files are checked now and re-read on every attempt.

    ``ca_file`` ``None`` trusts the system's default CAs. ``cert_file`` (optionally with a
    separate ``key_file`` and its ``key_password``) enables X.509 client authentication.
    ``verify_certificate=False`` also disables the hostname check. ``server_hostname`` overrides
    the name sent in SNI, checked against the certificate and sent as the WebSocket ``Host``
    (default: the endpoint's host). ``alpn_protocols`` are offered in the ALPN extension, most
    preferred first (AWS IoT Core on port 443 wants ``("x-amzn-mqtt-ca",)``).

    ``context`` is your own client ``ssl.SSLContext`` (or a zero-argument callable returning one,
    called on every attempt) for whatever the fields above do not cover; it replaces them, so
    it cannot be combined with the file, password, verification or ALPN fields (set those on the
    context). ``server_hostname`` still applies. ``key_password`` is a secret: never shown.
    """

    ca_file: str | Path | None = None
    cert_file: str | Path | None = None
    key_file: str | Path | None = None
    key_password: str | bytes | SecretProvider | None = None
    verify_hostname: bool = True
    verify_certificate: bool = True
    server_hostname: str | None = None
    alpn_protocols: Sequence[str] = ()
    context: ssl.SSLContext | Callable[[], ssl.SSLContext] | None = None
    _warned: bool = field(default=False, init=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("ca_file", "cert_file", "key_file"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, check_path(name, value))
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file: requires cert_file")
        if self.key_password is not None:
            if self.cert_file is None:
                raise ValueError("key_password: requires cert_file")
            object.__setattr__(
                self, "key_password", check_secret("key_password", self.key_password)
            )
        check_bool("verify_hostname", self.verify_hostname)
        check_bool("verify_certificate", self.verify_certificate)
        if self.server_hostname is not None:
            check_host("server_hostname", self.server_hostname)
        object.__setattr__(self, "alpn_protocols", _check_alpn(self.alpn_protocols))
        if self.context is not None:
            self._check_context()

    def _check_context(self) -> None:
        context: object = self.context
        if isinstance(context, ssl.SSLContext):
            _check_client_context(context, "context")
        elif not callable(context):
            raise TypeError(
                "context: must be an ssl.SSLContext or a callable returning one, "
                f"got {type(context).__name__}"
            )
        for name in ("ca_file", "cert_file", "key_file", "key_password"):
            if getattr(self, name) is not None:
                raise ValueError(
                    f"context: cannot be combined with {name} (load it into your SSLContext)"
                )
        for name in ("verify_hostname", "verify_certificate"):
            if not getattr(self, name):
                raise ValueError(
                    f"context: cannot be combined with {name}=False (configure verification "
                    "on your SSLContext: check_hostname, verify_mode)"
                )
        if self.alpn_protocols:
            raise ValueError(
                "alpn_protocols: cannot be combined with context "
                "(call set_alpn_protocols() on your SSLContext)"
            )

    def ssl_context(self) -> ssl.SSLContext:
        """A fresh client context (TLS >= 1.2) built by reading the files now.

        Called on every connection attempt so rotated certificates and keys take effect.
        Unreadable or malformed files raise ``OSError``/``ssl.SSLError`` naming the argument.
        With ``context``, that context (a provider is called now).
        """
        if self.context is not None:
            return self._given_context()
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
        if self.alpn_protocols:
            context.set_alpn_protocols(list(self.alpn_protocols))
        verify = self.verify_certificate
        context.check_hostname = verify and self.verify_hostname
        context.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
        self._warn_unverified(verify, verify and self.verify_hostname)
        return context

    def _given_context(self) -> ssl.SSLContext:
        given: Any = self.context
        context = given if isinstance(given, ssl.SSLContext) else given()
        if not isinstance(context, ssl.SSLContext):
            raise TypeError(
                f"context: provider returned {type(context).__name__}, expected ssl.SSLContext"
            )
        _check_client_context(context, "context")
        self._warn_unverified(context.verify_mode != ssl.CERT_NONE, context.check_hostname)
        return context

    def _warn_unverified(self, verify: bool, check_hostname: bool) -> None:
        """Say once, loudly, that the broker's identity is not (fully) checked."""
        if not (verify and check_hostname) and not self._warned:
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
            f"alpn_protocols={self.alpn_protocols!r}",
        ]
        if self.context is not None:
            kind = "SSLContext" if isinstance(self.context, ssl.SSLContext) else "provider"
            parts.append(f"context=<{kind}>")
        return f"TlsSettings({', '.join(parts)})"


def _check_alpn(value: object) -> tuple[str, ...]:
    """ALPN protocol names: a sequence (not one str) of 1-255 ASCII characters each."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise TypeError(
            "alpn_protocols: must be a sequence of str such as ('mqtt',), "
            f"got {type(value).__name__}"
        )
    names = tuple(value)
    for index, name in enumerate(names):
        argument = f"alpn_protocols[{index}]"
        if not isinstance(name, str):
            raise TypeError(f"{argument}: must be a str, got {type(name).__name__}")
        if not name or len(name) > 255 or not name.isascii() or not name.isprintable():
            raise ValueError(
                f"{argument}: must be 1 to 255 printable ASCII characters, got {name!r}"
            )
        if name in names[:index]:
            raise ValueError(f"{argument}: {name!r} is listed twice")
    if names and not ssl.HAS_ALPN:  # pragma: no cover - every supported OpenSSL has ALPN
        raise ValueError("alpn_protocols: this Python's OpenSSL has no ALPN support")
    return names


def _check_client_context(context: ssl.SSLContext, argument: str) -> None:
    if context.protocol == ssl.PROTOCOL_TLS_SERVER:
        raise ValueError(
            f"{argument}: is a server-side SSLContext; give a client one "
            "(ssl.create_default_context() or ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))"
        )


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
