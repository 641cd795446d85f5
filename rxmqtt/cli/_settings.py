"""From a parsed command line to what the connection needs: settings, reconnect policy, topics.

Every problem is a :class:`UsageError` naming the flag, raised before anything connects.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from ..policies import Backoff, Jitter, ReconnectPolicy
from ..presets import preset as named_preset
from ..settings import ConnectionSettings, TlsSettings
from ..settings._protocol import MQTT5_NEEDED, MQTT_3_1_1, v311_session_expiry
from ..topics import validate_filter, validate_topic
from ._args import FOREVER, PASSWORD_ENV

__all__ = ["CLI_RECONNECT", "DEFAULT_SESSION_EXPIRY", "Plan", "UsageError", "plan_from"]

CLI_RECONNECT = ReconnectPolicy(backoff=Backoff(initial=0.1, maximum=5.0, jitter=Jitter.FULL))
"""Without ``--preset``: someone is watching, so retry quickly."""

DEFAULT_SESSION_EXPIRY = 86_400
"""``-c`` without ``-x``: the broker keeps the session for a day."""


class UsageError(ValueError):
    """A bad flag, topic, filter or file: exit status 2, one line naming it."""


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a run connects with and to: the settings, the reconnect policy and the other
    policies of ``--preset``, and the topic (pub) or filters (sub, watch)."""

    settings: ConnectionSettings
    reconnect: ReconnectPolicy
    connection_kwargs: Mapping[str, Any]
    topic: str | None
    filters: tuple[str, ...]


def _split_url(url: str) -> tuple[str, str | None]:
    """``url`` without its path, and the path as a topic (mosquitto's ``-L`` carries one);
    a ``ws://``/``wss://`` URL keeps its path, the WebSocket path."""
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise UsageError(f"-L/--url: {exc}") from None
    if parts.scheme.lower() in ("ws", "wss"):
        return url, None
    topic = unquote(parts.path[1:]) if parts.path.startswith("/") and len(parts.path) > 1 else None
    return urlunsplit(parts._replace(path="")), topic


def _read_password_file(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"--password-file: cannot read {path!r}: {reason}") from None
    return text[:-1] if text.endswith("\n") else text


def _tls_from(args: argparse.Namespace, current: TlsSettings | None) -> TlsSettings | None:
    wanted = args.cafile or args.tls_use_os_certs or args.cert or args.key or args.insecure
    if not wanted:
        return current
    if bool(args.cert) != bool(args.key):
        raise UsageError("--cert/--key: give both or neither")
    for flag, path in (("--cafile", args.cafile), ("--cert", args.cert), ("--key", args.key)):
        if path is not None and not Path(path).is_file():
            raise UsageError(f"{flag}: no such file: {path!r}")
    base = current or TlsSettings()
    return dataclasses.replace(
        base,
        ca_file=args.cafile or base.ca_file,
        cert_file=args.cert or base.cert_file,
        key_file=args.key or base.key_file,
        verify_hostname=base.verify_hostname and not args.insecure,
    )


def _base_settings(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> tuple[ConnectionSettings, str | None]:
    """Settings from ``--env`` or ``-L`` (or the defaults), and the URL's topic (-L's path)."""
    if args.env and args.url:
        raise UsageError("--env: cannot be combined with -L/--url (give one)")
    if args.env:
        if not environ.get("AIO_BROKER_HOSTNAME") and args.host is None:
            raise UsageError("--env: AIO_BROKER_HOSTNAME is not set (or give -h HOST)")
        env_overrides = {"host": args.host} if args.host is not None else {}
        return ConnectionSettings.from_env(environ, **env_overrides), None
    if args.url:
        url, topic = _split_url(args.url)
        return ConnectionSettings.from_url(url), topic
    return ConnectionSettings(host="localhost"), None


def _named_client(args: argparse.Namespace, environ: Mapping[str, str]) -> bool:
    """Whether the user named the client (-i, ``client_id`` in -L, ``AIO_MQTT_CLIENT_ID``)."""
    if args.client_id:
        return True
    if args.url:
        return any(
            key == "client_id" and value for key, value in parse_qsl(urlsplit(args.url).query)
        )
    return bool(args.env and environ.get("AIO_MQTT_CLIENT_ID"))


def _session(
    args: argparse.Namespace, environ: Mapping[str, str], protocol_version: int
) -> dict[str, Any]:
    """The CLI's session rule: clean (ends with the connection) unless ``-c`` asks otherwise.
    (MQTT 3.1.1: ``-c`` is Clean Session 0, a session without expiry; ``-x`` needs MQTT 5.)"""
    if args.persistent:
        if not _named_client(args, environ):
            raise UsageError("-c: a persistent session needs a client id (-i ID)")
        if protocol_version == MQTT_3_1_1:
            if args.session_expiry is not None:
                raise UsageError(f"-x: {MQTT5_NEEDED} session expiry")
            return {"clean_start": False, "session_expiry": v311_session_expiry(False)}
        expiry = DEFAULT_SESSION_EXPIRY if args.session_expiry is None else args.session_expiry
        return {"clean_start": False, "session_expiry": int(expiry)}
    if args.session_expiry is not None:
        raise UsageError("-x: only with -c (a clean session ends with the connection)")
    return {"clean_start": True, "session_expiry": 0}


def _reconnect(args: argparse.Namespace, base: ReconnectPolicy) -> ReconnectPolicy:
    if args.retries is None:  # like mosquitto: a first connection that fails ends the run
        return dataclasses.replace(base, retry_first_connect=False)
    if args.retries == FOREVER:
        return dataclasses.replace(base, max_attempts=None, retry_first_connect=True)
    return dataclasses.replace(
        base, max_attempts=args.retries, retry_first_connect=args.retries > 0
    )


def _topics(args: argparse.Namespace, url_topic: str | None) -> tuple[str | None, tuple[str, ...]]:
    try:
        if args.command == "pub":
            topic = args.topic if args.topic is not None else url_topic
            if topic is None:
                raise UsageError("-t: a topic is required (-t TOPIC, or a path in -L)")
            return validate_topic(topic, argument="-t"), ()
        filters = list(args.filters or ([url_topic] if url_topic is not None else []))
        if not filters and args.command == "sub":
            raise UsageError("-t: at least one topic filter is required (-t FILTER)")
        return None, tuple(validate_filter(f, argument="-t") for f in filters)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def plan_from(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Plan:
    """The :class:`Plan` for a parsed command line; :class:`UsageError` naming the flag when
    something is wrong. ``environ`` (default ``os.environ``) is read for ``--env`` and for
    :data:`~rxmqtt.cli._args.PASSWORD_ENV`."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    try:
        settings, url_topic = _base_settings(args, env)
        topic, filters = _topics(args, url_topic)
        changes: dict[str, Any] = {}
        if args.host is not None and not args.env:
            changes["host"] = args.host
        if args.client_id is not None:
            changes["client_id"] = args.client_id
        if args.username is not None:
            changes["username"] = args.username
        secrets_given = [
            flag
            for flag, value in (("-P", args.password), ("--password-file", args.password_file))
            if value is not None
        ]
        if len(secrets_given) > 1:
            raise UsageError("-P: cannot be combined with --password-file (give one)")
        if args.password is not None:
            changes.update(password=args.password, password_file=None)
        elif args.password_file is not None:
            changes.update(password=_read_password_file(args.password_file), password_file=None)
        elif env.get(PASSWORD_ENV) and settings.password is None and not settings.password_file:
            # the variable stands in for -P: below a password given in -L or by --env's files
            changes.update(password=env[PASSWORD_ENV], password_file=None)
        tls = _tls_from(args, settings.tls)
        if tls is not settings.tls:
            changes["tls"] = tls
        if args.port is not None:
            changes["port"] = args.port
        elif tls is not None and settings.tls is None and not args.url:
            changes["port"] = None  # the TLS default, 8883
        if changes:
            settings = dataclasses.replace(settings, **changes)
        preset = named_preset(args.preset) if args.preset is not None else None
        if preset is not None:
            settings = preset.apply(settings)
        session = _session(args, env, settings.protocol_version)
        if args.keepalive is not None:
            session["keep_alive"] = int(args.keepalive)
        settings = dataclasses.replace(settings, **session)
    except UsageError:
        raise
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    kwargs: dict[str, Any] = dict(preset.connection_kwargs()) if preset is not None else {}
    reconnect = _reconnect(args, kwargs.pop("reconnect", CLI_RECONNECT))
    return Plan(settings, reconnect, kwargs, topic, filters)
