"""ConnectionSettings, TlsSettings, Will, Endpoint: validation, parsing, secrets, TLS contexts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import logging
import re
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from rxmqtt.message import PublishProperties
from rxmqtt.settings import (
    K8S_SAT_AUTH_METHOD,
    Authenticator,
    ConnectionSettings,
    Endpoint,
    FileSecret,
    K8sSatAuthenticator,
    TlsSettings,
    Will,
)
from rxmqtt.topics import InvalidTopicError

MISSING = "/nonexistent/rxmqtt/file.pem"

# ---------------------------------------------------------------------------------------------
# certificates made at test time


@dataclasses.dataclass
class Pki:
    """PEM files for a CA, a server certificate for localhost, and a client certificate."""

    directory: Path
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path  # encrypted with KEY_PASSWORD
    other_ca_file: Path


KEY_PASSWORD = "key-pass-phrase"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    dns: tuple[str, ...] = (),
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer if issuer is not None else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
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
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    if dns:
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
        names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, password: str | None = None) -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.NoEncryption()
        if password is None
        else serialization.BestAvailableEncryption(password.encode())
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return path


def _make_ca(directory: Path, name: str) -> tuple[Path, tuple[str, ec.EllipticCurvePrivateKey]]:
    key = ec.generate_private_key(ec.SECP256R1())
    path = _write_cert(directory / f"{name}.pem", _certificate(name, key, None, ca=True))
    return path, (name, key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca_file, ca = _make_ca(directory, "rxmqtt-test-ca")
    other_ca_file, _ = _make_ca(directory, "other-ca")
    server_key = ec.generate_private_key(ec.SECP256R1())
    client_key = ec.generate_private_key(ec.SECP256R1())
    return Pki(
        directory=directory,
        ca_file=ca_file,
        server_cert=_write_cert(
            directory / "server.pem",
            _certificate("localhost", server_key, ca, dns=("localhost",)),
        ),
        server_key=_write_key(directory / "server.key", server_key),
        client_cert=_write_cert(directory / "client.pem", _certificate("client-1", client_key, ca)),
        client_key=_write_key(directory / "client.key", client_key, KEY_PASSWORD),
        other_ca_file=other_ca_file,
    )


def _server_context(pki: Pki, *, require_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=pki.ca_file)
    return context


def _handshake(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext, server_hostname: str
) -> ssl.SSLObject:
    """Run a TLS handshake in memory (no sockets); return the server side's SSLObject."""
    client_in, client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(client_in, client_out, server_hostname=server_hostname)
    server = server_context.wrap_bio(server_in, server_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, side in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        server_in.write(client_out.read())
        client_in.write(server_out.read())
        if all(done.values()):
            return server
    raise AssertionError("handshake did not complete")


def _common_names(context: ssl.SSLContext) -> list[str]:
    names: list[str] = []
    for cert in context.get_ca_certs():
        for rdn in cert["subject"]:
            for key, value in rdn:
                if key == "commonName":
                    names.append(value)
    return names


# ---------------------------------------------------------------------------------------------
# validation: every error path, with its exact message


@pytest.fixture
def existing_file(tmp_path: Path) -> Path:
    path = tmp_path / "exists.txt"
    path.write_text("secret-value\n")
    return path


ValidationCase = tuple[Callable[[Path], object], type[Exception], str]

VALIDATION_CASES: dict[str, ValidationCase] = {
    "empty host": (lambda f: ConnectionSettings(host=""), ValueError, "host: must not be empty"),
    "host type": (lambda f: ConnectionSettings(host=1), TypeError, "host: must be a str, got int"),
    "host whitespace": (
        lambda f: ConnectionSettings(host="a b"),
        ValueError,
        "host: invalid host 'a b'",
    ),
    "host with port": (
        lambda f: ConnectionSettings(host="broker:1883"),
        ValueError,
        "host: 'broker:1883' is neither a host name nor an IPv6 address (give the port separately)",
    ),
    "port 0": (lambda f: ConnectionSettings(port=0), ValueError, "port: must be >= 1, got 0"),
    "port too big": (
        lambda f: ConnectionSettings(port=65536),
        ValueError,
        "port: must be <= 65535, got 65536",
    ),
    "port str": (
        lambda f: ConnectionSettings(port="1883"),
        TypeError,
        "port: must be an int, got str",
    ),
    "port bool": (
        lambda f: ConnectionSettings(port=True),
        TypeError,
        "port: must be an int, got bool",
    ),
    "keep_alive negative": (
        lambda f: ConnectionSettings(keep_alive=-1),
        ValueError,
        "keep_alive: must be >= 0 seconds, got -1",
    ),
    "keep_alive too big": (
        lambda f: ConnectionSettings(keep_alive=65536),
        ValueError,
        "keep_alive: must be <= 65535 seconds, got 65536",
    ),
    "keep_alive float": (
        lambda f: ConnectionSettings(keep_alive=1.5),
        TypeError,
        "keep_alive: must be an int, got float",
    ),
    "session_expiry negative": (
        lambda f: ConnectionSettings(session_expiry=-1),
        ValueError,
        "session_expiry: must be >= 0 seconds, got -1",
    ),
    "session_expiry too big": (
        lambda f: ConnectionSettings(session_expiry=2**32),
        ValueError,
        "session_expiry: must be <= 4294967295 seconds, got 4294967296",
    ),
    "clean_start int": (
        lambda f: ConnectionSettings(clean_start=1),
        TypeError,
        "clean_start: must be a bool, got int",
    ),
    "client_id type": (
        lambda f: ConnectionSettings(client_id=5),
        TypeError,
        "client_id: must be a str, got int",
    ),
    "client_id NUL": (
        lambda f: ConnectionSettings(client_id="a\x00"),
        ValueError,
        "client_id: must not contain the null character U+0000",
    ),
    "client_id too long": (
        lambda f: ConnectionSettings(client_id="x" * 65536),
        ValueError,
        "client_id: must be at most 65535 UTF-8 bytes, got 65536",
    ),
    "username bytes": (
        lambda f: ConnectionSettings(username=b"u"),
        TypeError,
        "username: must be a str, got bytes",
    ),
    "password int": (
        lambda f: ConnectionSettings(password=123),
        TypeError,
        "password: must be str, bytes or a callable returning one, got int",
    ),
    "password too long": (
        lambda f: ConnectionSettings(password="x" * 65536),
        ValueError,
        "password: must be at most 65535 bytes, got 65536",
    ),
    "password and password_file": (
        lambda f: ConnectionSettings(password="p", password_file=f),
        ValueError,
        "password_file: cannot be combined with password (give one)",
    ),
    "password_file missing": (
        lambda f: ConnectionSettings(password_file=MISSING),
        ValueError,
        f"password_file: no such file: {MISSING}",
    ),
    "password_file directory": (
        lambda f: ConnectionSettings(password_file=f.parent),
        ValueError,
        "password_file: not a regular file: {dir}",
    ),
    "password_file type": (
        lambda f: ConnectionSettings(password_file=3),
        TypeError,
        "password_file: must be a str or Path, got int",
    ),
    "tls type": (
        lambda f: ConnectionSettings(tls="yes"),
        TypeError,
        "tls: must be a TlsSettings or None, got str",
    ),
    "will type": (
        lambda f: ConnectionSettings(will="bye"),
        TypeError,
        "will: must be a Will or None, got str",
    ),
    "endpoints str": (
        lambda f: ConnectionSettings(endpoints="b:1883"),
        TypeError,
        "endpoints: must be a sequence of Endpoint or 'host:port' strings, got str",
    ),
    "endpoint port 0": (
        lambda f: ConnectionSettings(endpoints=["b:0"]),
        ValueError,
        "endpoints[0]: port: must be >= 1, got 0",
    ),
    "endpoint bad port": (
        lambda f: ConnectionSettings(endpoints=["ok:1", "b:x"]),
        ValueError,
        "endpoints[1]: invalid port 'x' in 'b:x'",
    ),
    "endpoint type": (
        lambda f: ConnectionSettings(endpoints=[5]),
        TypeError,
        "endpoints[0]: must be an Endpoint or a str, got int",
    ),
    "endpoint unbalanced bracket": (
        lambda f: ConnectionSettings(endpoints=["[::1"]),
        ValueError,
        "endpoints[0]: unbalanced '[' in '[::1'",
    ),
    "endpoint junk after bracket": (
        lambda f: ConnectionSettings(endpoints=["[::1]x"]),
        ValueError,
        "endpoints[0]: unexpected 'x' after ']' in '[::1]x'",
    ),
    "connect_timeout zero": (
        lambda f: ConnectionSettings(connect_timeout=0),
        ValueError,
        "connect_timeout: must be > 0 seconds, got 0",
    ),
    "connect_timeout inf": (
        lambda f: ConnectionSettings(connect_timeout=float("inf")),
        ValueError,
        "connect_timeout: must be > 0 seconds, got inf",
    ),
    "connect_timeout str": (
        lambda f: ConnectionSettings(connect_timeout="10"),
        TypeError,
        "connect_timeout: must be a number, got str",
    ),
    "receive_maximum zero": (
        lambda f: ConnectionSettings(receive_maximum=0),
        ValueError,
        "receive_maximum: must be >= 1, got 0",
    ),
    "receive_maximum too big": (
        lambda f: ConnectionSettings(receive_maximum=65536),
        ValueError,
        "receive_maximum: must be <= 65535, got 65536",
    ),
    "maximum_packet_size zero": (
        lambda f: ConnectionSettings(maximum_packet_size=0),
        ValueError,
        "maximum_packet_size: must be >= 1 bytes, got 0",
    ),
    "auth_method empty": (
        lambda f: ConnectionSettings(auth_method=""),
        ValueError,
        "auth_method: must not be empty",
    ),
    "auth_data without method": (
        lambda f: ConnectionSettings(auth_data=b"x"),
        ValueError,
        "auth_data: requires auth_method",
    ),
    "auth_data str": (
        lambda f: ConnectionSettings(auth_method="m", auth_data="x"),
        TypeError,
        "auth_data: must be bytes or a callable returning bytes, got str",
    ),
    "authenticator type": (
        lambda f: ConnectionSettings(authenticator="K8S-SAT"),
        TypeError,
        "authenticator: must be an Authenticator (rxmqtt.settings), got str",
    ),
    "authenticator without a method": (
        lambda f: ConnectionSettings(authenticator=Authenticator()),
        ValueError,
        "authenticator.method: must not be empty",
    ),
    "authenticator and auth_method": (
        lambda f: ConnectionSettings(auth_method="m", authenticator=K8sSatAuthenticator(f)),
        ValueError,
        "authenticator: cannot be combined with auth_method (give one)",
    ),
    "k8s sat missing token file": (
        lambda f: K8sSatAuthenticator(MISSING),
        ValueError,
        f"token_file: no such file: {MISSING}",
    ),
    "authenticator under MQTT 3.1.1": (
        lambda f: ConnectionSettings(protocol_version=4, authenticator=K8sSatAuthenticator(f)),
        ValueError,
        "authenticator: needs MQTT 5 (protocol_version=5); MQTT 3.1.1 has no enhanced "
        "authentication",
    ),
    "url sat_file missing": (
        lambda f: ConnectionSettings.from_url(f"mqtt://h?sat_file={MISSING}"),
        ValueError,
        f"url: query parameter 'sat_file': no such file: {MISSING}",
    ),
    "k8s sat poll interval zero": (
        lambda f: K8sSatAuthenticator(f, poll_interval=0),
        ValueError,
        "poll_interval: must be > 0 seconds, got 0",
    ),
    "k8s sat poll interval text": (
        lambda f: K8sSatAuthenticator(f, poll_interval="5"),
        TypeError,
        "poll_interval: must be a number, got str",
    ),
    "will wildcard topic": (
        lambda f: Will("a/+"),
        InvalidTopicError,
        "will.topic: wildcards '+' and '#' are not allowed in a publish topic: 'a/+'",
    ),
    "will empty topic": (lambda f: Will(""), InvalidTopicError, "will.topic: must not be empty"),
    "will qos": (lambda f: Will("t", qos=3), ValueError, "will.qos: must be 0, 1 or 2, got 3"),
    "will qos bool": (
        lambda f: Will("t", qos=True),
        TypeError,
        "will.qos: must be an int, got bool",
    ),
    "will payload type": (
        lambda f: Will("t", payload=1),
        TypeError,
        "will.payload: must be bytes or str, got int",
    ),
    "will payload too big": (
        lambda f: Will("t", payload=b"x" * 65536),
        ValueError,
        "will.payload: must be at most 65535 bytes, got 65536",
    ),
    "will delay negative": (
        lambda f: Will("t", delay_interval=-1),
        ValueError,
        "will.delay_interval: must be >= 0 seconds, got -1",
    ),
    "will retain": (
        lambda f: Will("t", retain="yes"),
        TypeError,
        "will.retain: must be a bool, got str",
    ),
    "will properties": (
        lambda f: Will("t", properties={}),
        TypeError,
        "will.properties: must be a PublishProperties, got dict",
    ),
    "tls ca_file missing": (
        lambda f: TlsSettings(ca_file=MISSING),
        ValueError,
        f"ca_file: no such file: {MISSING}",
    ),
    "tls cert_file missing": (
        lambda f: TlsSettings(cert_file=MISSING),
        ValueError,
        f"cert_file: no such file: {MISSING}",
    ),
    "tls ca_file type": (
        lambda f: TlsSettings(ca_file=3),
        TypeError,
        "ca_file: must be a str or Path, got int",
    ),
    "tls ca_file empty": (
        lambda f: TlsSettings(ca_file=""),
        ValueError,
        "ca_file: must be a non-empty path",
    ),
    "tls key without cert": (
        lambda f: TlsSettings(key_file=f),
        ValueError,
        "key_file: requires cert_file",
    ),
    "tls key password without cert": (
        lambda f: TlsSettings(key_password="x"),
        ValueError,
        "key_password: requires cert_file",
    ),
    "tls key password type": (
        lambda f: TlsSettings(cert_file=f, key_password=5),
        TypeError,
        "key_password: must be str, bytes or a callable returning one, got int",
    ),
    "tls verify_hostname": (
        lambda f: TlsSettings(verify_hostname="no"),
        TypeError,
        "verify_hostname: must be a bool, got str",
    ),
    "tls verify_certificate": (
        lambda f: TlsSettings(verify_certificate=0),
        TypeError,
        "verify_certificate: must be a bool, got int",
    ),
    "tls server_hostname": (
        lambda f: TlsSettings(server_hostname=""),
        ValueError,
        "server_hostname: must not be empty",
    ),
    "endpoint port": (lambda f: Endpoint("h", 0), ValueError, "port: must be >= 1, got 0"),
    "endpoint host": (lambda f: Endpoint("", 1), ValueError, "host: must not be empty"),
    "endpoint parse without port": (
        lambda f: Endpoint.parse("h"),
        ValueError,
        "endpoint: missing port in 'h' (expected 'host:port')",
    ),
}


@pytest.mark.parametrize("case", VALIDATION_CASES.values(), ids=VALIDATION_CASES.keys())
def test_validation_errors_name_the_argument(case: ValidationCase, existing_file: Path) -> None:
    build, error, message = case
    with pytest.raises(error) as info:
        build(existing_file)
    assert type(info.value) is error
    assert str(info.value) == message.format(dir=existing_file.parent)


def test_there_are_many_validation_cases() -> None:
    assert len(VALIDATION_CASES) >= 20


# ---------------------------------------------------------------------------------------------
# defaults, normalisation, endpoints


def test_defaults() -> None:
    settings = ConnectionSettings()
    assert settings.host == "localhost"
    assert settings.port == 1883
    assert settings.keep_alive == 60
    assert settings.tls is None
    assert settings.connect_timeout == 10.0
    assert settings.all_endpoints() == (Endpoint("localhost", 1883),)


@pytest.mark.parametrize(
    ("kwargs", "clean_start", "session_expiry"),
    [
        pytest.param({}, True, 0, id="no client id: clean, no session"),
        pytest.param({"client_id": ""}, True, 0, id="empty client id: the same"),
        pytest.param({"client_id": "dev-1"}, False, 3600, id="named: persistent session"),
        pytest.param({"session_expiry": 600}, True, 600, id="no id, explicit expiry wins"),
        pytest.param({"clean_start": False}, False, 0, id="no id, explicit clean_start wins"),
        pytest.param({"client_id": "d", "session_expiry": 0}, False, 0, id="named, expiry 0"),
        pytest.param({"client_id": "d", "clean_start": True}, True, 3600, id="named, clean"),
    ],
)
def test_the_session_rule(kwargs: dict[str, Any], clean_start: bool, session_expiry: int) -> None:
    """The table in ConnectionSettings' docstring: the session follows the client id."""
    settings = ConnectionSettings(**kwargs)
    assert (settings.clean_start, settings.session_expiry) == (clean_start, session_expiry)
    url = "mqtt://h?client_id=dev-1" if kwargs.get("client_id") == "dev-1" else None
    if url is not None:
        from_url = ConnectionSettings.from_url(url)
        assert (from_url.clean_start, from_url.session_expiry) == (False, 3600)
    if not kwargs:
        assert ConnectionSettings.from_url("mqtt://h").session_expiry == 0
        env = ConnectionSettings.from_env({"AIO_BROKER_HOSTNAME": "h", "AIO_MQTT_USE_TLS": "false"})
        assert (env.clean_start, env.session_expiry) == (True, 0)


def test_port_defaults_to_8883_with_tls() -> None:
    assert ConnectionSettings(tls=TlsSettings()).port == 8883
    assert ConnectionSettings(tls=TlsSettings(), port=1234).port == 1234


def test_generated_client_id_is_stable_for_the_object() -> None:
    settings = ConnectionSettings()
    assert re.fullmatch(r"rxmqtt-[0-9a-f]{12}", settings.client_id)
    assert settings.client_id == settings.client_id
    # A copy with changes keeps the id, so a persistent session survives reconfiguration.
    assert dataclasses.replace(settings, keep_alive=5).client_id == settings.client_id
    assert ConnectionSettings().client_id != settings.client_id
    assert ConnectionSettings(client_id="dev-1").client_id == "dev-1"


def test_all_endpoints_puts_host_first_and_deduplicates() -> None:
    settings = ConnectionSettings(
        host="a",
        port=1883,
        endpoints=["b:1884", Endpoint("a", 1883), "[::1]:1885", "b:1884", "c"],
    )
    assert [str(e) for e in settings.all_endpoints()] == [
        "a:1883",
        "b:1884",
        "[::1]:1885",
        "c:1883",
    ]
    assert settings.endpoints == (
        Endpoint("b", 1884),
        Endpoint("a", 1883),
        Endpoint("::1", 1885),
        Endpoint("b", 1884),
        Endpoint("c", 1883),
    )


def test_ipv6_host_brackets_are_removed() -> None:
    settings = ConnectionSettings(host="[::1]", port=1883)
    assert settings.host == "::1"
    assert str(settings.all_endpoints()[0]) == "[::1]:1883"
    assert str(Endpoint("fe80::1%eth0", 1)) == "[fe80::1%eth0]:1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("broker:1883", Endpoint("broker", 1883)),
        ("[::1]:8883", Endpoint("::1", 8883)),
        ("10.0.0.1:1", Endpoint("10.0.0.1", 1)),
        ("broker", Endpoint("broker", 99)),
        ("[::1]", Endpoint("::1", 99)),
        ("::1", Endpoint("::1", 99)),
    ],
)
def test_endpoint_parse(text: str, expected: Endpoint) -> None:
    assert Endpoint.parse(text, default_port=99) == expected


_hosts = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,10}){0,2}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)


@given(_hosts, st.integers(1, 65535))
def test_endpoint_str_round_trips_through_parse(host: str, port: int) -> None:
    endpoint = Endpoint(host, port)
    assert Endpoint.parse(str(endpoint)) == endpoint
    assert ConnectionSettings.from_url(f"mqtt://{endpoint}").all_endpoints() == (endpoint,)


def test_will_normalises_payload() -> None:
    assert Will("t", "h\u00e9").payload == "h\u00e9".encode()
    assert Will("t", bytearray(b"x")).payload == b"x"
    will = Will("t", qos=1, retain=True, delay_interval=30, properties=PublishProperties())
    assert (will.qos, will.retain, will.delay_interval) == (1, True, 30)
    assert ConnectionSettings(will=will).will is will


def test_settings_are_frozen_and_hashable() -> None:
    settings = ConnectionSettings(client_id="x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.host = "other"  # type: ignore[misc]
    assert hash(settings) == hash(ConnectionSettings(client_id="x"))


# ---------------------------------------------------------------------------------------------
# credentials resolved per attempt


def test_static_passwords_are_bytes() -> None:
    assert ConnectionSettings(username="u", password="p\u00e9").credentials() == (
        "u",
        "p\u00e9".encode(),
    )
    assert ConnectionSettings(password=b"\x00\x01").credentials() == (None, b"\x00\x01")
    assert ConnectionSettings(username="u").credentials() == ("u", None)


def test_password_provider_is_called_on_every_attempt() -> None:
    tokens = iter(["token-1", "token-2"])
    calls: list[int] = []

    def provider() -> str:
        calls.append(1)
        return next(tokens)

    settings = ConnectionSettings(username="u", password=provider)
    assert not calls  # nothing is resolved at construction
    assert settings.credentials() == ("u", b"token-1")
    assert settings.credentials() == ("u", b"token-2")
    assert len(calls) == 2


def test_password_provider_must_return_text_or_bytes() -> None:
    settings = ConnectionSettings(password=lambda: 42)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError) as info:
        settings.credentials()
    assert str(info.value) == "password: provider returned int, expected str or bytes"


def test_password_file_is_re_read_on_every_attempt(tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_text("first\n")
    settings = ConnectionSettings(username="u", password_file=path)
    assert settings.credentials() == ("u", b"first")
    path.write_text("second")
    assert settings.credentials() == ("u", b"second")
    path.write_bytes(b"third\r\n")
    assert settings.credentials() == ("u", b"third")
    path.write_bytes(b"two-newlines\n\n")  # only one trailing newline is removed
    assert settings.credentials() == ("u", b"two-newlines\n")


def test_unreadable_password_file_raises_os_error_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_text("x")
    settings = ConnectionSettings(password_file=str(path))
    path.unlink()
    with pytest.raises(FileNotFoundError) as info:
        settings.credentials()
    assert info.value.filename == str(path)
    assert str(info.value).startswith("[Errno 2] password_file: No such file or directory")
    assert str(path) in str(info.value)


def test_auth_data_is_resolved_per_attempt(tmp_path: Path) -> None:
    assert ConnectionSettings().resolved_auth_data() is None
    assert ConnectionSettings(auth_method="m", auth_data=b"d").resolved_auth_data() == b"d"
    token = tmp_path / "token"
    token.write_text("jwt-1\n")
    settings = ConnectionSettings(auth_method="m", auth_data=FileSecret(token))
    assert settings.resolved_auth_data() == b"jwt-1"
    token.write_text("jwt-2\n")
    assert settings.resolved_auth_data() == b"jwt-2"
    bad = ConnectionSettings(auth_method="m", auth_data=lambda: "text")  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError) as info:
        bad.resolved_auth_data()
    assert str(info.value) == "auth_data: provider returned str, expected bytes"


def test_file_secret_error_names_its_argument(tmp_path: Path) -> None:
    secret = FileSecret(tmp_path / "gone", "AIO_SAT_FILE")
    with pytest.raises(FileNotFoundError, match=r"AIO_SAT_FILE: No such file or directory"):
        secret()


# ---------------------------------------------------------------------------------------------
# repr never leaks a secret

SECRET = "s3cr3t-value"


def test_repr_masks_password_and_auth_data(tmp_path: Path) -> None:
    cases = [
        ConnectionSettings(username="user", password=SECRET),
        ConnectionSettings(username="user", password=SECRET.encode()),
        ConnectionSettings(password=lambda: SECRET),
        ConnectionSettings(auth_method="m", auth_data=SECRET.encode()),
        ConnectionSettings.from_url(f"mqtt://user:{SECRET}@broker"),
    ]
    for settings in cases:
        text = repr(settings)
        assert SECRET not in text
        assert SECRET not in str(settings)
        assert "'***'" in text
        assert "lambda" not in text
    assert "username='user'" in repr(cases[0])
    assert "password=None" in repr(ConnectionSettings())


def test_repr_masks_key_password(pki: Pki) -> None:
    tls = TlsSettings(cert_file=pki.client_cert, key_file=pki.client_key, key_password=SECRET)
    assert SECRET not in repr(tls)
    assert "key_password='***'" in repr(tls)
    assert SECRET not in repr(ConnectionSettings(tls=tls))
    assert f"cert_file='{pki.client_cert}'" in repr(tls)


def test_url_errors_do_not_echo_the_password() -> None:
    for url in (f"mqtt://u:{SECRET}@h:bad", f"mqtt://u:{SECRET}@h?nope=1"):
        with pytest.raises(ValueError, match=r"^url: ") as info:
            ConnectionSettings.from_url(url)
        assert SECRET not in str(info.value)


# ---------------------------------------------------------------------------------------------
# from_url


def test_from_url_design_example() -> None:
    settings = ConnectionSettings.from_url("mqtts://user@broker:8883?client_id=dev-1")
    assert (settings.host, settings.port, settings.client_id) == ("broker", 8883, "dev-1")
    assert settings.username == "user"
    assert settings.password is None
    assert settings.tls == TlsSettings()


@pytest.mark.parametrize(
    ("url", "host", "port", "tls"),
    [
        ("mqtt://broker", "broker", 1883, False),
        ("tcp://broker:1884", "broker", 1884, False),
        ("mqtts://broker", "broker", 8883, True),
        ("ssl://broker", "broker", 8883, True),
        ("tls://broker:9999/", "broker", 9999, True),
        ("MQTT://Broker.Example", "broker.example", 1883, False),
        ("mqtt://[::1]:1884", "::1", 1884, False),
        ("mqtts://10.0.0.2", "10.0.0.2", 8883, True),
    ],
)
def test_from_url_schemes_hosts_and_ports(url: str, host: str, port: int, tls: bool) -> None:
    settings = ConnectionSettings.from_url(url)
    assert (settings.host, settings.port, settings.tls is not None) == (host, port, tls)


def test_from_url_decodes_user_and_password() -> None:
    settings = ConnectionSettings.from_url("mqtt://us%40er:p%40ss%3Aw%2Ford@broker")
    assert settings.credentials() == ("us@er", b"p@ss:w/ord")


def test_from_url_query_parameters(pki: Pki) -> None:
    settings = ConnectionSettings.from_url(
        "mqtts://broker?client_id=dev-1&keep_alive=30&session_expiry=0&clean_start=TRUE"
        f"&connect_timeout=2.5&ca_file={pki.ca_file}&cert_file={pki.client_cert}"
        f"&key_file={pki.client_key}&verify_hostname=0"
    )
    assert settings == ConnectionSettings(
        host="broker",
        client_id="dev-1",
        keep_alive=30,
        session_expiry=0,
        clean_start=True,
        connect_timeout=2.5,
        tls=TlsSettings(
            ca_file=pki.ca_file,
            cert_file=pki.client_cert,
            key_file=pki.client_key,
            verify_hostname=False,
        ),
    )
    assert ConnectionSettings.from_url("mqtt://h?clean_start=false").clean_start is False
    assert ConnectionSettings.from_url("mqtt://h?receive_maximum=8").receive_maximum == 8
    assert ConnectionSettings.from_url("mqtt://h?clean_start=1").clean_start is True


def test_from_url_overrides_win() -> None:
    tls = TlsSettings(verify_hostname=False)
    settings = ConnectionSettings.from_url(
        "mqtts://u:p@h?keep_alive=5&client_id=a&ca_file=/not/read/because/overridden",
        keep_alive=7,
        client_id="b",
        password=None,
        tls=tls,
        will=Will("status/b", b"offline"),
    )
    assert (settings.keep_alive, settings.client_id, settings.password) == (7, "b", None)
    assert settings.tls is tls
    assert settings.will == Will("status/b", b"offline")


@pytest.mark.parametrize(
    ("url", "error", "message"),
    [
        (
            "http://h",
            ValueError,
            "url: unknown scheme 'http' "
            "(expected mqtt, mqtts, tcp, ssl, tls, ws, wss, mqttv311 or mqttv311s)",
        ),
        ("broker", ValueError, "url: missing scheme (expected mqtt://, mqtts://, ...)"),
        ("mqtt://", ValueError, "url: missing host"),
        ("mqtt://h:99999", ValueError, "url: invalid port in 'h:99999'"),
        ("mqtt://h:abc", ValueError, "url: invalid port in 'h:abc'"),
        (
            "mqtt://h/topic",
            ValueError,
            "url: unexpected path '/topic' (only ws:// and wss:// have one)",
        ),
        ("mqtt://h#frag", ValueError, "url: unexpected fragment 'frag'"),
        ("mqtt://h?foo=1", ValueError, "url: unknown query parameter 'foo'"),
        (
            "mqtt://h?keep_alive=1&keep_alive=2",
            ValueError,
            "url: query parameter 'keep_alive' given more than once",
        ),
        (
            "mqtt://h?keep_alive=abc",
            ValueError,
            "url: query parameter 'keep_alive': must be an integer, got 'abc'",
        ),
        (
            "mqtt://h?clean_start=yes",
            ValueError,
            "url: query parameter 'clean_start': must be true, false, 1 or 0, got 'yes'",
        ),
        (
            "mqtt://h?connect_timeout=soon",
            ValueError,
            "url: query parameter 'connect_timeout': must be a number, got 'soon'",
        ),
        (
            "mqtt://h?ca_file=/x",
            ValueError,
            "url: query parameter 'ca_file' needs a TLS scheme (mqtts, ssl, tls, wss or mqttv311s)",
        ),
        ("mqtt://h?keep_alive=-1", ValueError, "keep_alive: must be >= 0 seconds, got -1"),
        ("mqtt://h?receive_maximum=0", ValueError, "receive_maximum: must be >= 1, got 0"),
        (f"mqtts://h?ca_file={MISSING}", ValueError, f"ca_file: no such file: {MISSING}"),
        ("mqtt://[::1", ValueError, "url: Invalid IPv6 URL"),
        (b"mqtt://h", TypeError, "url: must be a str, got bytes"),
    ],
)
def test_from_url_errors(url: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        ConnectionSettings.from_url(url)
    assert str(info.value) == message


# ---------------------------------------------------------------------------------------------
# from_env (Azure IoT Operations SDK connection-settings variables)


def test_from_env_minimal_uses_aio_defaults() -> None:
    settings = ConnectionSettings.from_env({"AIO_BROKER_HOSTNAME": "aio-broker"})
    assert settings.host == "aio-broker"
    assert settings.port == 8883  # TLS is on by default
    assert settings.tls == TlsSettings()
    # No AIO_MQTT_CLIENT_ID: a generated id, so the session rule gives a clean, expiring one.
    assert settings.clean_start is True
    assert (settings.keep_alive, settings.session_expiry) == (60, 0)
    assert settings.client_id.startswith("rxmqtt-")
    named = ConnectionSettings.from_env({"AIO_BROKER_HOSTNAME": "h", "AIO_MQTT_CLIENT_ID": "d"})
    assert (named.clean_start, named.session_expiry) == (False, 3600)
    assert settings.credentials() == (None, None)
    assert settings.auth_method is None


def test_from_env_reads_every_variable(pki: Pki, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("pw-1\n")
    key_password_file = tmp_path / "key-password"
    key_password_file.write_text(KEY_PASSWORD + "\n")
    settings = ConnectionSettings.from_env(
        {
            "AIO_BROKER_HOSTNAME": "aio-broker.azure-iot-operations",
            "AIO_BROKER_TCP_PORT": "18883",
            "AIO_MQTT_USE_TLS": "true",
            "AIO_TLS_CA_FILE": str(pki.ca_file),
            "AIO_MQTT_CLEAN_START": "true",
            "AIO_MQTT_KEEP_ALIVE": "15",
            "AIO_MQTT_CLIENT_ID": "sensor-1",
            "AIO_MQTT_SESSION_EXPIRY": "86400",
            "AIO_MQTT_USERNAME": "client",
            "AIO_MQTT_PASSWORD_FILE": str(password_file),
            "AIO_TLS_CERT_FILE": str(pki.client_cert),
            "AIO_TLS_KEY_FILE": str(pki.client_key),
            "AIO_TLS_KEY_PASSWORD_FILE": str(key_password_file),
            "UNRELATED": "ignored",
        }
    )
    assert (settings.host, settings.port) == ("aio-broker.azure-iot-operations", 18883)
    assert (settings.clean_start, settings.keep_alive, settings.session_expiry) == (True, 15, 86400)
    assert settings.client_id == "sensor-1"
    assert settings.credentials() == ("client", b"pw-1")
    password_file.write_text("pw-2\n")
    assert settings.credentials() == ("client", b"pw-2")
    tls = settings.tls
    assert tls is not None
    assert (tls.ca_file, tls.cert_file, tls.key_file) == (
        pki.ca_file,
        pki.client_cert,
        pki.client_key,
    )
    assert tls.key_password == FileSecret(key_password_file)
    tls.ssl_context()  # the encrypted key is decrypted with the pass-phrase from the file


def test_from_env_sat_file_enables_k8s_sat_enhanced_auth(tmp_path: Path) -> None:
    token = tmp_path / "broker-sat"
    token.write_text("sat-token-1\n")
    settings = ConnectionSettings.from_env(
        {"AIO_BROKER_HOSTNAME": "aio-broker", "AIO_SAT_FILE": str(token)}
    )
    assert isinstance(settings.authenticator, K8sSatAuthenticator)
    assert settings.authenticator.method == K8S_SAT_AUTH_METHOD == "K8S-SAT"
    assert settings.authenticator.token_file == token
    assert settings.resolved_auth_data() == b"sat-token-1"
    token.write_text("sat-token-2\n")  # Kubernetes rotates the projected token
    assert settings.resolved_auth_data() == b"sat-token-2"
    assert settings.credentials() == (None, None)
    assert "sat-token" not in repr(settings)
    token.unlink()
    with pytest.raises(FileNotFoundError, match=r"AIO_SAT_FILE"):
        settings.resolved_auth_data()


def test_from_url_sat_file_enables_k8s_sat_enhanced_auth(tmp_path: Path) -> None:
    token = tmp_path / "broker-sat"
    token.write_text("sat-token-1")
    settings = ConnectionSettings.from_url(f"mqtts://aio-broker:18883?sat_file={token}")
    assert isinstance(settings.authenticator, K8sSatAuthenticator)
    assert settings.authenticator.token_file == token
    assert settings.resolved_auth_data() == b"sat-token-1"
    assert "sat-token" not in repr(settings)


def test_from_env_plain_tcp_and_overrides() -> None:
    env = {"AIO_BROKER_HOSTNAME": "b", "AIO_MQTT_USE_TLS": "false", "AIO_MQTT_CLIENT_ID": ""}
    settings = ConnectionSettings.from_env(env, keep_alive=5)
    assert (settings.port, settings.tls, settings.keep_alive) == (1883, None, 5)
    assert settings.client_id.startswith("rxmqtt-")  # empty counts as unset
    assert ConnectionSettings.from_env({}, host="override").host == "override"


def test_from_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIO_BROKER_HOSTNAME", "from-os-environ")
    monkeypatch.setenv("AIO_MQTT_USE_TLS", "0")
    assert ConnectionSettings.from_env().host == "from-os-environ"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "AIO_BROKER_HOSTNAME: required but not set"),
        ({"AIO_BROKER_HOSTNAME": ""}, "AIO_BROKER_HOSTNAME: required but not set"),
        ({"AIO_BROKER_HOSTNAME": "a b"}, "AIO_BROKER_HOSTNAME: invalid host 'a b'"),
        (
            {"AIO_BROKER_TCP_PORT": "abc"},
            "AIO_BROKER_TCP_PORT: must be an integer, got 'abc'",
        ),
        (
            {"AIO_BROKER_TCP_PORT": "70000"},
            "AIO_BROKER_TCP_PORT: must be between 1 and 65535, got '70000'",
        ),
        (
            {"AIO_MQTT_KEEP_ALIVE": "-5"},
            "AIO_MQTT_KEEP_ALIVE: must be between 0 and 65535, got '-5'",
        ),
        (
            {"AIO_MQTT_SESSION_EXPIRY": "1.5"},
            "AIO_MQTT_SESSION_EXPIRY: must be an integer, got '1.5'",
        ),
        (
            {"AIO_MQTT_USE_TLS": "maybe"},
            "AIO_MQTT_USE_TLS: must be true, false, 1 or 0, got 'maybe'",
        ),
        (
            {"AIO_MQTT_CLEAN_START": "yes"},
            "AIO_MQTT_CLEAN_START: must be true, false, 1 or 0, got 'yes'",
        ),
        ({"AIO_TLS_CA_FILE": MISSING}, f"AIO_TLS_CA_FILE: no such file: {MISSING}"),
        ({"AIO_SAT_FILE": MISSING}, f"AIO_SAT_FILE: no such file: {MISSING}"),
        (
            {"AIO_MQTT_PASSWORD_FILE": MISSING},
            f"AIO_MQTT_PASSWORD_FILE: no such file: {MISSING}",
        ),
        (
            {"AIO_MQTT_USE_TLS": "false", "AIO_TLS_CA_FILE": "{file}"},
            "AIO_TLS_CA_FILE: set but AIO_MQTT_USE_TLS is false",
        ),
        (
            {"AIO_MQTT_USE_TLS": "false", "AIO_TLS_KEY_PASSWORD_FILE": "{file}"},
            "AIO_TLS_KEY_PASSWORD_FILE: set but AIO_MQTT_USE_TLS is false",
        ),
        ({"AIO_TLS_KEY_FILE": "{file}"}, "AIO_TLS_KEY_FILE: requires AIO_TLS_CERT_FILE"),
        (
            {"AIO_TLS_KEY_PASSWORD_FILE": "{file}"},
            "AIO_TLS_KEY_PASSWORD_FILE: requires AIO_TLS_CERT_FILE",
        ),
        (
            {"AIO_SAT_FILE": "{file}", "AIO_MQTT_PASSWORD_FILE": "{file}"},
            "AIO_SAT_FILE: cannot be combined with AIO_MQTT_PASSWORD_FILE",
        ),
    ],
)
def test_from_env_errors_name_the_variable(
    env: dict[str, str], message: str, existing_file: Path
) -> None:
    environ = {"AIO_BROKER_HOSTNAME": "b"} if env else {}
    environ.update({k: v.format(file=existing_file) for k, v in env.items()})
    with pytest.raises(ValueError, match=r"^AIO_") as info:
        ConnectionSettings.from_env(environ)
    assert str(info.value) == message


# ---------------------------------------------------------------------------------------------
# TlsSettings.ssl_context against real certificates


def test_ssl_context_defaults(pki: Pki) -> None:
    context = TlsSettings(ca_file=pki.ca_file).ssl_context()
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.check_hostname is True
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert _common_names(context) == ["rxmqtt-test-ca"]
    system = TlsSettings().ssl_context()  # system CAs
    assert system.verify_mode == ssl.CERT_REQUIRED


def test_ssl_context_verifies_the_server(pki: Pki) -> None:
    context = TlsSettings(ca_file=pki.ca_file).ssl_context()
    _handshake(context, _server_context(pki), "localhost")
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        _handshake(context, _server_context(pki), "wrong.example")
    untrusting = TlsSettings(ca_file=pki.other_ca_file).ssl_context()
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        _handshake(untrusting, _server_context(pki), "localhost")


def test_disabled_verification_works_and_warns_once(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rxmqtt")
    no_hostname = TlsSettings(ca_file=pki.ca_file, verify_hostname=False)
    context = no_hostname.ssl_context()
    assert (context.check_hostname, context.verify_mode) == (False, ssl.CERT_REQUIRED)
    _handshake(context, _server_context(pki), "wrong.example")
    no_hostname.ssl_context()
    warnings = [r for r in caplog.records if r.name == "rxmqtt"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "hostname verification is OFF" in warnings[0].getMessage()

    caplog.clear()
    no_certificate = TlsSettings(ca_file=pki.other_ca_file, verify_certificate=False)
    context = no_certificate.ssl_context()
    assert (context.check_hostname, context.verify_mode) == (False, ssl.CERT_NONE)
    _handshake(context, _server_context(pki), "anything")
    assert ["certificate verification is OFF" in r.getMessage() for r in caplog.records] == [True]


def test_verified_context_does_not_warn(pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="rxmqtt")
    TlsSettings(ca_file=pki.ca_file).ssl_context()
    assert caplog.records == []


@pytest.mark.parametrize("kind", ["str", "bytes", "callable", "file"])
def test_client_certificate_with_encrypted_key(pki: Pki, tmp_path: Path, kind: str) -> None:
    key_password: str | bytes | Callable[[], str | bytes]
    if kind == "str":
        key_password = KEY_PASSWORD
    elif kind == "bytes":
        key_password = KEY_PASSWORD.encode()
    elif kind == "callable":
        key_password = lambda: KEY_PASSWORD  # noqa: E731
    else:
        (tmp_path / "kp").write_text(KEY_PASSWORD + "\n")
        key_password = FileSecret(tmp_path / "kp")
    tls = TlsSettings(
        ca_file=pki.ca_file,
        cert_file=pki.client_cert,
        key_file=pki.client_key,
        key_password=key_password,
    )
    server = _handshake(
        tls.ssl_context(), _server_context(pki, require_client_cert=True), "localhost"
    )
    peer = server.getpeercert()
    assert peer is not None
    assert (("commonName", "client-1"),) in peer["subject"]


def test_key_password_provider_is_called_per_context(pki: Pki) -> None:
    calls: list[int] = []

    def provider() -> str:
        calls.append(1)
        return KEY_PASSWORD

    tls = TlsSettings(cert_file=pki.client_cert, key_file=pki.client_key, key_password=provider)
    tls.ssl_context()
    tls.ssl_context()
    assert len(calls) == 2


def test_wrong_key_password_names_the_files(pki: Pki) -> None:
    tls = TlsSettings(cert_file=pki.client_cert, key_file=pki.client_key, key_password="wrong")
    with pytest.raises(ssl.SSLError) as info:
        tls.ssl_context()
    assert str(info.value).startswith(
        f"cert_file: cannot load {pki.client_cert} (key_file {pki.client_key}): "
    )


@pytest.fixture
def rotating_ca(pki: Pki, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_bytes(pki.ca_file.read_bytes())
    return path


def test_ssl_context_re_reads_rotated_files(pki: Pki, rotating_ca: Path) -> None:
    tls = TlsSettings(ca_file=rotating_ca)
    assert _common_names(tls.ssl_context()) == ["rxmqtt-test-ca"]
    rotating_ca.write_bytes(pki.other_ca_file.read_bytes())
    assert _common_names(tls.ssl_context()) == ["other-ca"]


def test_ssl_context_reports_broken_files(rotating_ca: Path) -> None:
    tls = TlsSettings(ca_file=rotating_ca)
    rotating_ca.write_text("not a certificate")
    with pytest.raises(ssl.SSLError) as ssl_info:
        tls.ssl_context()
    assert str(ssl_info.value).startswith(f"ca_file: cannot load {rotating_ca}: ")
    rotating_ca.unlink()
    with pytest.raises(FileNotFoundError) as missing_info:
        tls.ssl_context()
    assert missing_info.value.filename == str(rotating_ca)
    assert "ca_file" in str(missing_info.value)
