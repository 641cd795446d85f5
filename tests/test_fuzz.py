"""Hypothesis fuzzing of the validation at rxmqtt's call sites.

The contract (DESIGN.md): a bad argument raises at the call site, at once, ``TypeError`` or
``ValueError`` with a message that starts with the argument's name -- never another exception,
never a message without the name. ``tests/test_bad_input.py`` pins the exact error of each of
its hand-picked bad calls; this file throws generated input at the same entry points:

- topic names and filters (``rxmqtt.topics``), checked against an independent statement of the
  MQTT 5 rules (4.7: levels, wildcards, ``$share``; 1.5.4: UTF-8 strings);
- ``ConnectionSettings.from_url`` with arbitrary text and with structured URLs (and the
  password in a URL never appears in an error message);
- ``ConnectionSettings(host=...)``;
- ``Connection.publish()`` and ``PublishProperties`` with arbitrary values for every argument.
"""

from __future__ import annotations

import array
import math
import re
import unicodedata
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rxmqtt import Connection, ConnectionSettings, PublishProperties, QueuePolicy
from rxmqtt.topics import MAX_TOPIC_BYTES, InvalidTopicError, validate_filter, validate_topic

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------------------------
# generators


_TOPIC_CHARS = st.one_of(
    st.sampled_from(list("ab/+#$ ")),
    st.sampled_from(["\x00", "\t", "\x7f", "\x85", "\ud800", "\udfff", "\ufdd0", "\ufffe"]),
    st.sampled_from(["\uffff", "\U0001fffe", "\U0010ffff", "\u00e9", "\U0001f600"]),
    st.characters(codec=None),
)
_topicish = st.one_of(
    st.text(_TOPIC_CHARS, max_size=20),
    st.lists(st.sampled_from(["a", "", "+", "#", "a+", "#a", "$SYS", "$share", "g"]), max_size=6)
    .map("/".join)
    .flatmap(lambda s: st.sampled_from([s, f"$share/{s}", f"$share/g/{s}"])),
    # around the 65535-byte bound, in 1- and 2-byte characters
    st.tuples(
        st.sampled_from(["a", "\u00e9"]), st.integers(32760, 32770) | st.integers(65530, 65540)
    ).map(lambda pair: pair[0] * (pair[1] if pair[0] == "a" else pair[1] // 2 + 1)),
)

_anything: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.binary(max_size=10),
    st.binary(max_size=10).map(bytearray),
    st.binary(max_size=10).map(lambda data: memoryview(data)),  # read-only, hashable
    st.lists(st.integers(), max_size=3),
    st.tuples(st.text(max_size=3), st.text(max_size=3)),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(object()),
    st.just(PublishProperties()),
    st.just(math.nan),
)


# ---------------------------------------------------------------------------------------------
# topics: an independent statement of the rules


def _string_problem(value: str) -> str | None:
    """What the spec (or Mosquitto) refuses in any topic string, in the order rxmqtt checks."""
    if not value:
        return "must not be empty"
    for char in value:
        code = ord(char)
        if (
            code <= 0x1F
            or 0x7F <= code <= 0x9F
            or 0xD800 <= code <= 0xDFFF
            or 0xFDD0 <= code <= 0xFDEF
            or code & 0xFFFE == 0xFFFE
        ):
            return f"U+{code:04X}"
    if len(value.encode("utf-8")) > MAX_TOPIC_BYTES:
        return "UTF-8 bytes"
    return None


def _topic_problem(value: str) -> str | None:
    problem = _string_problem(value)
    if problem is None and ("+" in value or "#" in value):
        return "wildcards"
    return problem


def _filter_problem(value: str) -> str | None:
    problem = _string_problem(value)
    if problem is not None:
        return problem
    if value.startswith("$share/"):
        group, separator, value = value[len("$share/") :].partition("/")
        if not group or "+" in group or "#" in group:
            return "group"
        if not separator or not value:
            return "filter after the group"
    levels = value.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return "'#'"
        if "+" in level and level != "+":
            return "'+'"
    return None


def _agrees(validate: Callable[[str], str], argument: str, problem: str | None, value: str) -> None:
    """``validate`` returns ``value`` when the spec finds no ``problem`` with it, else raises
    an error naming ``argument`` and the problem."""
    if problem is None:
        assert validate(value) == value
        return
    with pytest.raises(InvalidTopicError) as info:
        validate(value)
    assert str(info.value).startswith(f"{argument}: ")
    assert problem in str(info.value)


@FUZZ
@given(_topicish)
@example("")
@example("a" * MAX_TOPIC_BYTES)
@example("a" * (MAX_TOPIC_BYTES + 1))
def test_validate_topic_agrees_with_the_spec(value: str) -> None:
    _agrees(validate_topic, "topic", _topic_problem(value), value)


@FUZZ
@given(_topicish)
@example("$share/g/#")
@example("$share//#")
@example("$share/g")
@example("a/#/b")
def test_validate_filter_agrees_with_the_spec(value: str) -> None:
    _agrees(validate_filter, "topic_filter", _filter_problem(value), value)


def _error_of(call: Callable[[], object]) -> Exception | None:
    """The exception ``call`` raises (any kind), or ``None``."""
    try:
        call()
    except Exception as exc:
        return exc
    return None


@FUZZ
@given(_anything, st.sampled_from(["topic", "will.topic", "filters[3]"]))
def test_topic_validation_of_any_object_names_the_argument(value: Any, argument: str) -> None:
    for validate in (validate_topic, validate_filter):
        error = _error_of(lambda: validate(value, argument=argument))  # noqa: B023
        if error is None:
            assert isinstance(value, str)
            continue
        assert isinstance(error, TypeError | InvalidTopicError), repr(error)
        assert str(error).startswith(f"{argument}: "), error
        assert isinstance(error, TypeError) == (not isinstance(value, str))


# ---------------------------------------------------------------------------------------------
# ConnectionSettings.from_url

_SETTINGS_ARGUMENTS = (
    "url",
    "host",
    "port",
    "client_id",
    "keep_alive",
    "session_expiry",
    "clean_start",
    "connect_timeout",
    "username",
    "password",
    "ca_file",
    "cert_file",
    "key_file",
    "verify_hostname",
)
_NAMED = re.compile(rf"^({'|'.join(map(re.escape, _SETTINGS_ARGUMENTS))}): ")

_SECRET = "S3cr3t-Pw"
_url_text = st.text(
    st.one_of(st.characters(codec=None), st.sampled_from(list(":/@?&=#[]%."))), max_size=40
)
_schemes = st.sampled_from(["mqtt", "mqtts", "tcp", "ssl", "tls", "MQTT", "http", "", "mqtt+ws"])
_hosts = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z0-9-]{1,8}){0,2}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
    st.text(max_size=8),
)
_ports = st.one_of(st.none(), st.integers(-5, 70000).map(str), st.text(max_size=4))
_query_keys = st.sampled_from(
    [
        "client_id",
        "keep_alive",
        "session_expiry",
        "clean_start",
        "connect_timeout",
        "ca_file",
        "cert_file",
        "key_file",
        "verify_hostname",
        "clientid",
        "",
    ]
)
_query_values = st.one_of(
    st.sampled_from(["1", "0", "-1", "60", "true", "false", "yes", "nan", "inf", "1e3", "", "x"]),
    st.text(max_size=6),
)


@st.composite
def _urls(draw: st.DrawFn) -> str:
    scheme = draw(_schemes)
    userinfo = ""
    if draw(st.booleans()):
        user = draw(st.text(max_size=6))
        userinfo = f"{quote(user, safe='')}:{quote(_SECRET, safe='')}@"
    host = draw(_hosts)
    port = draw(_ports)
    pairs = draw(st.lists(st.tuples(_query_keys, _query_values), max_size=3))
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
    tail = draw(st.sampled_from(["", "/", "/path", "#frag"]))
    url = f"{scheme}://{userinfo}{host}"
    if port is not None:
        url += f":{port}"
    if query:
        url += f"?{query}"
    return url + tail


def _check_from_url(url: str) -> None:
    results: list[ConnectionSettings] = []
    error = _error_of(lambda: results.append(ConnectionSettings.from_url(url)))
    if error is None:
        assert _SECRET not in repr(results[0])
        return
    assert isinstance(error, TypeError | ValueError), repr(error)
    assert _NAMED.match(str(error)), f"{type(error).__name__} without the argument: {error}"
    assert _SECRET not in str(error), f"the password leaked into {error}"


@FUZZ
@given(_url_text)
def test_from_url_with_any_text(url: str) -> None:
    _check_from_url(url)


@FUZZ
@given(_urls())
def test_from_url_with_generated_urls(url: str) -> None:
    _check_from_url(url)


@FUZZ
@given(
    st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,8}){0,2}", fullmatch=True),
    st.integers(1, 65535),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=12),
    st.booleans(),
)
def test_from_url_round_trips_its_parts(
    host: str, port: int, user: str, password: str, tls: bool
) -> None:
    url = f"{'mqtts' if tls else 'mqtt'}://{quote(user, safe='')}:{quote(password, safe='')}@"
    result = ConnectionSettings.from_url(f"{url}{host}:{port}?keep_alive=7")
    assert (result.host, result.port, result.keep_alive) == (host, port, 7)
    assert result.username == user
    assert result.credentials() == (user, password.encode("utf-8"))
    assert (result.tls is not None) == tls
    assert "password='***'" in repr(result), "the password is masked in the repr"


def _host_is_plausible(host: str) -> bool:
    return bool(host) and not any(
        char.isspace() or unicodedata.category(char) in ("Cc", "Cs") for char in host
    )


@FUZZ
@given(st.text(st.one_of(st.characters(codec=None), st.sampled_from(["\x00", "\x7f", "\ud800"]))))
@example("a\x00b")
@example("\ud800")
def test_a_host_with_control_characters_is_refused_at_the_call_site(host: str) -> None:
    """``host`` is validated when the settings are built; a NUL, a control character or a lone
    surrogate can never resolve, so it must raise ``host: ...`` there, not fail every
    connection attempt later inside ``getaddrinfo``."""
    built: list[ConnectionSettings] = []
    error = _error_of(lambda: built.append(ConnectionSettings(host=host)))
    if error is not None:
        assert isinstance(error, TypeError | ValueError), repr(error)
        assert str(error).startswith("host: "), error
        return
    assert _host_is_plausible(built[0].host), f"accepted host {built[0].host!r}"


# ---------------------------------------------------------------------------------------------
# publish() and PublishProperties


def _released_view() -> memoryview:
    view = memoryview(b"gone")
    view.release()
    return view


_PUBLISH_ARGUMENTS = ("topic", "payload", "qos", "retain", "properties", "message_expiry_interval")
_VALID: dict[str, Any] = {
    "topic": "fuzz/t",
    "payload": b"x",
    "qos": 1,
    "retain": False,
    "properties": None,
    "message_expiry_interval": None,
}
_candidates: dict[str, st.SearchStrategy[Any]] = {
    "topic": st.one_of(_topicish, _anything),
    "payload": st.one_of(
        _anything,
        st.text(st.characters(codec=None), max_size=5),
        st.builds(lambda: memoryview(array.array("i", [1, 2]))),
        st.just("\ud800"),
    ),
    "qos": st.one_of(st.integers(-3, 5), _anything),
    "retain": _anything,
    "properties": st.one_of(_anything, st.builds(PublishProperties)),
    "message_expiry_interval": st.one_of(st.integers(-2, 2**33), _anything),
}


def _offline_connection() -> Connection:
    """Never started: a valid publish is queued (the tiny queue drops the oldest)."""
    return Connection(
        ConnectionSettings(host="127.0.0.1", port=1, client_id="fuzz"),
        queue=QueuePolicy(max_messages=5),
    )


def _publish(conn: Connection, args: dict[str, Any]) -> Exception | None:
    return _error_of(
        lambda: conn.publish(
            args["topic"],
            args["payload"],
            args["qos"],
            args["retain"],
            properties=args["properties"],
            message_expiry_interval=args["message_expiry_interval"],
        )
    )


@FUZZ
@given(st.sampled_from(_PUBLISH_ARGUMENTS).flatmap(lambda n: st.tuples(st.just(n), _candidates[n])))
@example(("payload", "\ud800"))
@example(("payload", _released_view()))
def test_publish_with_one_bad_argument_names_it(case: tuple[str, Any]) -> None:
    name, value = case
    error = _publish(_offline_connection(), {**_VALID, name: value})
    if error is None:
        return
    assert isinstance(error, TypeError | ValueError), f"{type(error).__name__}: {error}"
    assert str(error).startswith(f"{name}: "), f"{type(error).__name__} for {name}: {error}"


@FUZZ
@given(st.fixed_dictionaries(_candidates))
def test_publish_with_any_arguments_raises_only_named_type_or_value_errors(
    args: dict[str, Any],
) -> None:
    error = _publish(_offline_connection(), args)
    if error is None:
        return
    assert isinstance(error, TypeError | ValueError), f"{type(error).__name__}: {error}"
    assert any(str(error).startswith(f"{n}: ") for n in _PUBLISH_ARGUMENTS), str(error)


_PROPERTY_FIELDS = (
    "message_expiry_interval",
    "content_type",
    "response_topic",
    "correlation_data",
    "payload_format_indicator",
    "user_properties",
    "subscription_identifiers",
)


@FUZZ
@given(
    st.sampled_from(_PROPERTY_FIELDS),
    st.one_of(
        _anything,
        st.lists(st.tuples(st.text(max_size=3), _anything), max_size=2),
        st.lists(st.integers(-1, 2**29), max_size=3),
    ),
)
@example("user_properties", None)
@example("subscription_identifiers", 7)
@example("correlation_data", _released_view())
def test_publish_properties_with_any_field_value_name_the_field(name: str, value: Any) -> None:
    built: list[PublishProperties] = []
    error = _error_of(lambda: built.append(PublishProperties(**{name: value})))
    if error is not None:
        assert isinstance(error, TypeError | ValueError), repr(error)
        assert str(error).startswith(f"{name}: "), f"{type(error).__name__}: {error}"
        return
    # Accepted: it must then be publishable (size accounting, queueing) without surprises, or
    # refused by publish() naming it: a response topic a broker would refuse (empty, wildcards)
    # is a topic rule, checked where the message is sent, not where properties are decoded.
    error = _publish(_offline_connection(), {**_VALID, "properties": built[0]})
    if error is not None and name == "response_topic":
        assert isinstance(error, ValueError), repr(error)
        assert str(error).startswith("properties.response_topic: "), str(error)
        return
    assert error is None, f"{type(error).__name__}: {error}"
