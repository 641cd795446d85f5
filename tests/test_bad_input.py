"""Bad arguments raise at the call site, at once, with a message naming the argument.

Every call in the tables below must raise the exact exception type before anything reaches the
broker: on a ``Connection`` that was never started (nothing may be queued either) and on a
connected one (no PUBLISH/SUBSCRIBE may reach Mosquitto, and the connection stays up).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rxmqtt import (
    Backoff,
    Connection,
    ConnectionSettings,
    ConnectionState,
    InvalidTopicError,
    LifecycleEvent,
    PublishProperties,
    QueuePolicy,
    QueueStats,
    ReconnectPolicy,
    TlsSettings,
    Will,
)
from rxmqtt.testing import MosquittoBroker
from rxmqtt.testing.recorder import Recorder
from tests._helpers import wait_log

ConnCall = Callable[[Connection], object]
Call = Callable[[], object]


def bad(value: object) -> Any:
    """A deliberately ill-typed argument (keeps the type checker quiet about it)."""
    return value


def _publish(
    topic: object = "ok/topic",
    payload: object = b"x",
    qos: object = 1,
    retain: object = False,
    **kwargs: object,
) -> ConnCall:
    return lambda conn: conn.publish(bad(topic), bad(payload), bad(qos), bad(retain), **bad(kwargs))


def _messages(topic_filter: object, qos: object = 0) -> ConnCall:
    return lambda conn: conn.messages(bad(topic_filter), bad(qos))


# (call, exact exception type, regex the message must match: it starts with the argument name)
CONNECTION_CALLS = [
    pytest.param(_publish("a/+"), InvalidTopicError, r"^topic: wildcards", id="publish-topic-plus"),
    pytest.param(_publish("a/#"), InvalidTopicError, r"^topic: wildcards", id="publish-topic-hash"),
    pytest.param(_publish("+"), InvalidTopicError, r"^topic: wildcards", id="publish-topic-bare+"),
    pytest.param(_publish(""), InvalidTopicError, r"^topic: must not be empty", id="publish-empty"),
    pytest.param(_publish("a\x00b"), InvalidTopicError, r"^topic: .*null", id="publish-topic-nul"),
    pytest.param(_publish(b"a/b"), TypeError, r"^topic: must be a str", id="publish-topic-bytes"),
    pytest.param(_publish(7), TypeError, r"^topic: must be a str", id="publish-topic-int"),
    pytest.param(
        _publish("x" * 65536),
        InvalidTopicError,
        r"^topic: must be at most",
        id="publish-topic-long",
    ),
    pytest.param(_publish(qos=3), ValueError, r"^qos: must be 0, 1 or 2", id="publish-qos-3"),
    pytest.param(_publish(qos=-1), ValueError, r"^qos: must be 0, 1 or 2", id="publish-qos-neg"),
    pytest.param(
        _publish(qos="1"),
        TypeError,
        r"^qos: ",
        id="publish-qos-str",
    ),
    pytest.param(
        _publish(qos=True),
        TypeError,
        r"^qos: ",
        id="publish-qos-bool",
    ),
    pytest.param(_publish(payload=1), TypeError, r"^payload: must be", id="publish-payload-int"),
    pytest.param(
        _publish(payload={"a": 1}), TypeError, r"^payload: must be", id="publish-payload-dict"
    ),
    pytest.param(
        _publish(payload=None), TypeError, r"^payload: must be", id="publish-payload-none"
    ),
    pytest.param(
        _publish(payload=1.5), TypeError, r"^payload: must be", id="publish-payload-float"
    ),
    pytest.param(
        _publish(retain="yes"), TypeError, r"^retain: must be a bool", id="publish-retain-str"
    ),
    pytest.param(
        _publish(properties={"content_type": "x"}),
        TypeError,
        r"^properties: must be a PublishProperties",
        id="publish-properties-dict",
    ),
    pytest.param(
        _publish(message_expiry_interval=-1),
        ValueError,
        r"^message_expiry_interval: ",
        id="publish-expiry-neg",
    ),
    pytest.param(
        _publish(message_expiry_interval=2**32),
        ValueError,
        r"^message_expiry_interval: ",
        id="publish-expiry-2**32",
    ),
    pytest.param(
        _publish(message_expiry_interval=1.5),
        TypeError,
        r"^message_expiry_interval: ",
        id="publish-expiry-float",
    ),
    pytest.param(
        lambda conn: conn.publish(
            "ok/t", b"x", 1, properties=PublishProperties(payload_format_indicator=7)
        ),
        ValueError,
        r"payload_format_indicator",
        id="properties-format-indicator-7",
    ),
    pytest.param(
        lambda conn: conn.publish(
            "ok/t",
            b"x",
            1,
            properties=PublishProperties(content_type=bad(5)),
        ),
        TypeError,
        r"content_type",
        id="properties-content-type-int",
    ),
    pytest.param(
        lambda conn: conn.publish(
            "ok/t",
            b"x",
            1,
            properties=PublishProperties(correlation_data=bad("id-1")),
        ),
        TypeError,
        r"correlation_data",
        id="properties-correlation-data-str",
    ),
    pytest.param(
        lambda conn: conn.publish(
            "ok/t", b"x", 1, properties=PublishProperties(message_expiry_interval=-1)
        ),
        ValueError,
        r"message_expiry_interval",
        id="properties-expiry-neg",
    ),
    pytest.param(
        lambda conn: conn.publish(
            "ok/t",
            b"x",
            1,
            properties=PublishProperties(user_properties=bad((("k", 1),))),
        ),
        TypeError,
        r"user_properties",
        id="properties-user-property-int",
    ),
    pytest.param(_messages("a/#/b"), InvalidTopicError, r"^topic_filter: '#'", id="filter-#-mid"),
    pytest.param(_messages("a+"), InvalidTopicError, r"^topic_filter: '\+'", id="filter-a+"),
    pytest.param(_messages("a/b#"), InvalidTopicError, r"^topic_filter: '#'", id="filter-b#"),
    pytest.param(
        _messages(""), InvalidTopicError, r"^topic_filter: must not be empty", id="filter-empty"
    ),
    pytest.param(
        _messages("$share//x"), InvalidTopicError, r"^topic_filter: .*group", id="share-nogroup"
    ),
    pytest.param(
        _messages("$share/g"), InvalidTopicError, r"^topic_filter: .*filter", id="share-nofilter"
    ),
    pytest.param(
        _messages("$share/g/"), InvalidTopicError, r"^topic_filter: .*filter", id="share-empty"
    ),
    pytest.param(
        _messages("$share/g+/x"), InvalidTopicError, r"^topic_filter: .*group", id="share-g+"
    ),
    pytest.param(_messages(None), TypeError, r"^topic_filter: must be a str", id="filter-none"),
    pytest.param(
        _messages("a/b", qos=3), ValueError, r"^qos: must be 0, 1 or 2", id="filter-qos-3"
    ),
]

_MISSING = "/nonexistent/rxmqtt-test/ca.pem"

CONSTRUCTOR_CALLS = [
    pytest.param(
        lambda: ConnectionSettings(keep_alive=-1), ValueError, r"^keep_alive: ", id="keep-alive-neg"
    ),
    pytest.param(
        lambda: ConnectionSettings(keep_alive=bad(1.5)),
        TypeError,
        r"^keep_alive: ",
        id="keep-alive-flt",
    ),
    pytest.param(lambda: ConnectionSettings(port=0), ValueError, r"^port: ", id="port-0"),
    pytest.param(lambda: ConnectionSettings(port=70000), ValueError, r"^port: ", id="port-70000"),
    pytest.param(
        lambda: ConnectionSettings(port=bad("1883")), TypeError, r"^port: ", id="port-str"
    ),
    pytest.param(lambda: ConnectionSettings(host=""), ValueError, r"^host: ", id="host-empty"),
    pytest.param(
        lambda: ConnectionSettings(session_expiry=-1), ValueError, r"^session_expiry: ", id="expiry"
    ),
    pytest.param(
        lambda: ConnectionSettings(connect_timeout=0), ValueError, r"^connect_timeout: ", id="ct-0"
    ),
    pytest.param(
        lambda: ConnectionSettings(client_id=bad(5)), TypeError, r"^client_id: ", id="client-id-int"
    ),
    pytest.param(
        lambda: ConnectionSettings(endpoints=["h:99999"]),
        ValueError,
        r"^endpoints\[0\]: ",
        id="endpoint-port",
    ),
    pytest.param(
        lambda: ConnectionSettings(endpoints="h:1883"),
        TypeError,
        r"^endpoints: ",
        id="endpoints-str",
    ),
    pytest.param(
        lambda: ConnectionSettings(password_file=_MISSING),
        ValueError,
        r"^password_file: no such file",
        id="password-file-missing",
    ),
    pytest.param(
        lambda: ConnectionSettings(tls=TlsSettings(ca_file=_MISSING)),
        ValueError,
        r"^ca_file: no such file",
        id="ca-file-missing",
    ),
    pytest.param(
        lambda: TlsSettings(cert_file=_MISSING),
        ValueError,
        r"^cert_file: no such",
        id="cert-missing",
    ),
    pytest.param(
        lambda: ConnectionSettings(tls=bad("yes")),
        TypeError,
        r"^tls: must be a TlsSettings",
        id="tls-str",
    ),
    pytest.param(
        lambda: ConnectionSettings.from_url("http://broker:1883"),
        ValueError,
        r"^url: unknown scheme 'http'",
        id="url-scheme",
    ),
    pytest.param(
        lambda: ConnectionSettings.from_url("broker:1883"),
        ValueError,
        r"^url: ",
        id="url-no-scheme",
    ),
    pytest.param(
        lambda: ConnectionSettings.from_url("mqtt://broker?clientid=x"),
        ValueError,
        r"^url: unknown query parameter 'clientid'",
        id="url-query-param",
    ),
    pytest.param(
        lambda: ConnectionSettings.from_url("mqtt://broker?keep_alive=soon"),
        ValueError,
        r"keep_alive",
        id="url-keep-alive",
    ),
    pytest.param(lambda: Will("a/+"), InvalidTopicError, r"^will\.topic: ", id="will-topic"),
    pytest.param(lambda: Will("a", qos=3), ValueError, r"^will\.qos: ", id="will-qos"),
    pytest.param(lambda: Backoff(initial=-1), ValueError, r"^initial: ", id="backoff-initial"),
    pytest.param(
        lambda: Backoff(initial=2, maximum=1), ValueError, r"^maximum: ", id="backoff-max<initial"
    ),
    pytest.param(
        lambda: Backoff(multiplier=0.5), ValueError, r"^multiplier: ", id="backoff-multiplier"
    ),
    pytest.param(
        lambda: ReconnectPolicy(max_attempts=-1), ValueError, r"^max_attempts: ", id="max-attempts"
    ),
    pytest.param(
        lambda: ReconnectPolicy(reset_after=-1), ValueError, r"^reset_after: ", id="reset-after"
    ),
    pytest.param(
        lambda: ReconnectPolicy(backoff=bad(1.0)), TypeError, r"^backoff: ", id="reconnect-backoff"
    ),
    pytest.param(
        lambda: QueuePolicy(max_messages=0), ValueError, r"^max_messages: ", id="queue-max-msgs"
    ),
    pytest.param(lambda: QueuePolicy(max_bytes=-5), ValueError, r"^max_bytes: ", id="queue-bytes"),
    pytest.param(
        lambda: Connection(bad(42)),
        TypeError,
        r"^settings: must be a ConnectionSettings or an mqtt:// URL",
        id="conn-settings",
    ),
    pytest.param(
        lambda: Connection("not a url"), ValueError, r"^url: missing scheme", id="conn-url-scheme"
    ),
    pytest.param(
        lambda: Connection("mqtt://h:70000"), ValueError, r"^url: invalid port", id="conn-url-port"
    ),
    pytest.param(
        lambda: Connection("mqtt://h?client=x"),
        ValueError,
        r"^url: unknown query parameter 'client'",
        id="conn-url-query",
    ),
    pytest.param(
        lambda: Connection("mqtt://h", keep_alive=-1), ValueError, r"^keep_alive: ", id="conn-ovr"
    ),
    pytest.param(
        lambda: Connection("mqtt://h", colour="red"),
        TypeError,
        r"^colour: not a ConnectionSettings field",
        id="conn-override-unknown",
    ),
    pytest.param(
        lambda: Connection("mqtt://h").messages("t", retain_handling=3),
        ValueError,
        r"^retain_handling: must be 0, 1 or 2",
        id="messages-retain-handling",
    ),
    pytest.param(
        lambda: Connection("mqtt://h").messages("t", no_local=bad(1)),
        TypeError,
        r"^no_local: must be a bool",
        id="messages-no-local",
    ),
    pytest.param(
        lambda: Connection("mqtt://h").messages("$share/g/t", no_local=True),
        ValueError,
        r"^no_local: not allowed on a shared subscription",
        id="messages-no-local-shared",
    ),
    pytest.param(
        lambda: Connection("mqtt://h").messages("t", retain_as_published=bad("yes")),
        TypeError,
        r"^retain_as_published: must be a bool",
        id="messages-rap",
    ),
    pytest.param(
        lambda: Connection(ConnectionSettings(), reconnect=bad(Backoff())),
        TypeError,
        r"^reconnect: must be",
        id="conn-reconnect",
    ),
    pytest.param(
        lambda: Connection(ConnectionSettings(), queue=bad(10)),
        TypeError,
        r"^queue: must be",
        id="conn-q",
    ),
]


def test_the_table_is_big_enough() -> None:
    assert len(CONNECTION_CALLS) + len(CONSTRUCTOR_CALLS) >= 30


def _raises_exactly(
    call: Call, exc_type: type[Exception], match: str
) -> pytest.ExceptionInfo[Exception]:
    with pytest.raises(exc_type, match=match) as info:
        call()
    assert type(info.value) is exc_type, f"expected exactly {exc_type.__name__}: {info.value!r}"
    return info


@pytest.mark.parametrize(("call", "exc_type", "match"), CONSTRUCTOR_CALLS)
def test_bad_constructor_argument(call: Call, exc_type: type[Exception], match: str) -> None:
    _raises_exactly(call, exc_type, match)


@pytest.mark.parametrize(("call", "exc_type", "match"), CONNECTION_CALLS)
async def test_bad_call_on_a_connection_never_started(
    call: ConnCall, exc_type: type[Exception], match: str
) -> None:
    conn = Connection(ConnectionSettings(host="127.0.0.1", port=1, client_id="never-started"))
    stats: Recorder[QueueStats] = Recorder(conn.queue_stats)
    _raises_exactly(lambda: call(conn), exc_type, match)
    assert conn.state is ConnectionState.DISCONNECTED
    assert stats.items[-1].depth == 0, "nothing may be queued"
    await conn.close()


# ---------------------------------------------------------------- on a connected Connection


@pytest.fixture(scope="module")
def broker() -> Iterator[MosquittoBroker]:
    """One broker for the whole table (each test uses its own client id)."""
    with MosquittoBroker() as started:
        yield started


def _client_id() -> str:
    return f"bad-{uuid.uuid4().hex[:12]}"


@pytest.mark.broker
@pytest.mark.parametrize(("call", "exc_type", "match"), CONNECTION_CALLS)
async def test_bad_call_on_a_connected_connection(
    broker: MosquittoBroker, call: ConnCall, exc_type: type[Exception], match: str
) -> None:
    client_id = _client_id()
    conn = Connection(ConnectionSettings(host=broker.host, port=broker.port, client_id=client_id))
    events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        _raises_exactly(lambda: call(conn), exc_type, match)
        # A good publish afterwards: once the broker has it, anything the bad call had sent
        # would have reached the broker before it (one ordered socket).
        result = await asyncio.wait_for(conn.publish("ok/after", b"fine", qos=1), 5)
        assert result.reason_code in (0x00, 0x10)
        await wait_log(broker, f"Received PUBLISH from {client_id} ")
        log = broker.log_text()
        assert log.count(f"Received PUBLISH from {client_id} ") == 1, "only the good publish"
        assert f"Received SUBSCRIBE from {client_id}" not in log
        assert conn.state is ConnectionState.CONNECTED
    kinds = [type(e).__name__ for e in events.items]
    assert kinds == ["Connecting", "Connected", "Disconnected", "Closed"], kinds


@pytest.mark.broker
async def test_bad_publish_from_another_thread_raises_in_that_thread(
    broker: MosquittoBroker,
) -> None:
    """publish() may be called from any thread; validation still happens at that call site."""
    conn = Connection(
        ConnectionSettings(host=broker.host, port=broker.port, client_id=_client_id())
    )
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)

        def in_thread() -> BaseException | None:
            try:
                conn.publish("a/#", b"x", qos=1)
            except InvalidTopicError as exc:
                return exc
            return None

        error = await asyncio.wait_for(asyncio.to_thread(in_thread), 5)
        assert isinstance(error, InvalidTopicError)
        assert str(error).startswith("topic: ")
        assert conn.state is ConnectionState.CONNECTED


@pytest.mark.broker
async def test_bad_properties_published_offline_do_not_poison_the_queue(
    broker: MosquittoBroker,
) -> None:
    """A PublishProperties paho cannot encode, published while offline, must not stop every
    later publish: either it raises at the call site, or it alone fails when drained."""
    conn = Connection(
        ConnectionSettings(host=broker.host, port=broker.port, client_id=_client_id())
    )
    bad = None
    with contextlib.suppress(TypeError, ValueError):
        bad = conn.publish(
            "ok/bad", b"x", 1, properties=PublishProperties(payload_format_indicator=7)
        )
    good = conn.publish("ok/good", b"y", qos=1)
    async with conn:
        result = await asyncio.wait_for(good, 2)
        assert result.reason_code in (0x00, 0x10)
        later = await asyncio.wait_for(conn.publish("ok/later", b"z", qos=1), 5)
        assert later.reason_code in (0x00, 0x10)
        if bad is not None:
            with pytest.raises(Exception):  # noqa: B017, PT011 -- any error, but not a hang
                await asyncio.wait_for(bad, 5)


def test_missing_ca_file_message_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    with pytest.raises(ValueError, match=r"^ca_file: no such file") as info:
        TlsSettings(ca_file=missing)
    assert str(missing) in str(info.value)
