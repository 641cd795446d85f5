"""TLS settings: CA, client certificate and key, checked when built and re-read per attempt."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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
