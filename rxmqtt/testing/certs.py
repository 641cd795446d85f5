"""Test certificates made on the fly: a CA, server and client certificates, and negative variants.

``cryptography`` is imported lazily inside :func:`make_tls_files` so that importing the test
harness (and the pytest plugin) never fails when it is not installed.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["TlsFiles", "make_tls_files"]


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the PEM files made by :func:`make_tls_files`.

    ``ca_file`` signs the server and client certificates; ``other_ca_file`` is an unrelated CA
    (a client trusting only it must reject the server); ``wrong_host_cert``/``wrong_host_key`` are
    signed by the right CA but name only ``wrong.example`` (hostname verification must fail);
    ``other_client_cert``/``other_client_key`` are a client certificate signed by the unrelated CA
    (a broker requiring client certificates must reject it). ``encrypted_client_key`` is
    ``client_key`` encrypted with the pass-phrase ``client_key_password`` (for ``key_password``).
    """

    directory: Path
    ca_file: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_file: Path
    wrong_host_cert: Path
    wrong_host_key: Path
    other_client_cert: Path
    other_client_key: Path
    client_common_name: str = "client-1"
    encrypted_client_key: Path | None = None
    client_key_password: str = "rxmqtt-test-key-pass"


def _import_cryptography() -> Any:
    try:
        from cryptography import x509
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "rxmqtt.testing.make_tls_files needs the 'cryptography' package: "
            "pip install 'rxmqtt[test]' (or pip install cryptography)"
        ) from exc
    return x509


def _new_key() -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rxmqtt test harness"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _validity() -> tuple[_dt.datetime, _dt.datetime]:
    now = _dt.datetime.now(_dt.UTC)
    return now - _dt.timedelta(days=1), now + _dt.timedelta(days=30)


def _make_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key = _new_key()
    name = _name(common_name)
    not_before, not_after = _validity()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    *,
    hostnames: Sequence[str] = (),
    server: bool,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = _new_key()
    not_before, not_after = _validity()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if hostnames:
        sans: list[x509.GeneralName] = []
        for host in hostnames:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, password: str | None = None) -> Path:
    from cryptography.hazmat.primitives import serialization

    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()
        if password is None
        else serialization.BestAvailableEncryption(password.encode()),
    )
    path.write_bytes(data)
    os.chmod(path, 0o600)
    return path


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def make_tls_files(
    directory: str | os.PathLike[str],
    hostnames: Sequence[str] = ("localhost", "127.0.0.1"),
    *,
    client_common_name: str = "client-1",
) -> TlsFiles:
    """Generate a CA, server/client certificates and negative variants as PEM files.

    ``hostnames`` become the server certificate's subject alternative names (IP literals as
    IP SANs). Keys are EC P-256, so the whole set is made in a few milliseconds.
    """
    _import_cryptography()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)

    ca_key, ca_cert = _make_ca("rxmqtt test CA")
    other_ca_key, other_ca_cert = _make_ca("rxmqtt wrong CA")
    server_key, server_cert = _make_leaf(
        ca_key, ca_cert, hostnames[0] if hostnames else "server", hostnames=hostnames, server=True
    )
    wrong_key, wrong_cert = _make_leaf(
        ca_key, ca_cert, "wrong.example", hostnames=("wrong.example",), server=True
    )
    client_key, client_cert = _make_leaf(ca_key, ca_cert, client_common_name, server=False)
    other_client_key, other_client_cert = _make_leaf(
        other_ca_key, other_ca_cert, client_common_name, server=False
    )

    return TlsFiles(
        directory=out,
        ca_file=_write_cert(out / "ca.crt", ca_cert),
        ca_key=_write_key(out / "ca.key", ca_key),
        server_cert=_write_cert(out / "server.crt", server_cert),
        server_key=_write_key(out / "server.key", server_key),
        client_cert=_write_cert(out / "client.crt", client_cert),
        client_key=_write_key(out / "client.key", client_key),
        other_ca_file=_write_cert(out / "other-ca.crt", other_ca_cert),
        wrong_host_cert=_write_cert(out / "wrong-host.crt", wrong_cert),
        wrong_host_key=_write_key(out / "wrong-host.key", wrong_key),
        other_client_cert=_write_cert(out / "other-client.crt", other_client_cert),
        other_client_key=_write_key(out / "other-client.key", other_client_key),
        client_common_name=client_common_name,
        encrypted_client_key=_write_key(
            out / "client-encrypted.key", client_key, TlsFiles.client_key_password
        ),
    )
