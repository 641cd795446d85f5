"""AIO's language-neutral envoy test suite (METL), run against rxmqtt's envoys.

One pytest item per case file (id: the file's stem). Each case drives our envoys through
:class:`~.fake.MetlConnection` and checks every field of its epilogue. Cases needing something
rxmqtt deliberately does not support are skipped one by one with the reason.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from rxmqtt.binders import (
    AioError,
    CloudEvent,
    CommandExecutor,
    CommandInvoker,
    CommandRequest,
    CommandResult,
    Telemetry,
    TelemetryReceiver,
    TelemetrySender,
)
from rxmqtt.message import Message, PublishProperties

from .cases import Case, cases_dir, discover, merged, seconds
from .fake import MetlConnection, push_acks

CASES = discover()
STEP = 15.0
"""Seconds an ``await`` action may wait for the envoy before the case fails (never reached by
a passing case: every wait is for an event)."""

UNSUBACK = (
    "rxmqtt's subscriptions are ref-counted and released fire-and-forget on dispose (other "
    "users of the filter may remain); an UNSUBACK failure is the connection's to log, not an "
    "error raised at the envoy"
)
UNSUPPORTED: dict[str, str] = {
    "TelemetryReceiverUnsubAckFailure_ThrowsException": UNSUBACK,
    "CommandExecutorUnsubAckFailure_ThrowsException": UNSUBACK,
}


def _params() -> list[Any]:
    if not CASES:
        reason = (
            f"no METL cases: RXMQTT_METL_CASES is unset or not a directory and "
            f"{cases_dir() or '../shared/aio-metl/Protocol'} does not exist"
        )
        return [pytest.param(None, id="no-cases", marks=pytest.mark.skip(reason=reason))]
    return [pytest.param(case, id=case.name) for case in CASES]


@pytest.mark.parametrize("case", _params())
async def test_metl_case(case: Case) -> None:
    assert case is not None
    if case.name in UNSUPPORTED:
        pytest.skip(f"{case.name}: {UNSUPPORTED[case.name]}")
    document = case.load()
    driver = {
        "TelemetrySender": run_sender,
        "TelemetryReceiver": run_receiver,
        "CommandInvoker": run_invoker,
        "CommandExecutor": run_executor,
    }.get(case.envoy)
    if driver is None:
        pytest.skip(f"{case.name}: the {case.envoy} METL driver is not written yet")
    await driver(document, case.defaults)


# ---------------------------------------------------------------- shared checks


@dataclass(frozen=True)
class MetlSerializer:
    """The cases' serializer: payloads are the UTF-8 text of the value, content types and
    character-data flags as the case configures."""

    content_type: str | None
    payload_format_indicator: int | None
    accept_content_types: tuple[str, ...] = ()
    allow_character_data: bool = True
    fail_deserialization: bool = False

    def serialize(self, value: str | None) -> bytes:
        return b"" if value is None else value.encode("utf-8")

    def deserialize(self, payload: bytes) -> str:
        if self.fail_deserialization:
            raise ValueError("the case's serializer fails deserialization")
        return payload.decode("utf-8")

    def accepts(self, content_type: str | None, payload_format_indicator: int | None) -> bool:
        if payload_format_indicator == 1 and not self.allow_character_data:
            return False
        return (content_type or "") in self.accept_content_types


def given_value(config: dict[str, Any], key: str) -> Any:
    """A setting as the case gives it, ``None`` included (cases test absent settings)."""
    return config.get(key)


def connection(prologue: dict[str, Any]) -> MetlConnection:
    config = prologue.get("mqtt-config") or {}
    acks = prologue.get("push-acks") or {}
    return MetlConnection(
        client_id=config.get("client-id", "MetlClient"),
        publish_acks=push_acks(acks.get("publish")),
        subscribe_acks=push_acks(acks.get("subscribe")),
        unsubscribe_acks=push_acks(acks.get("unsubscribe")),
    )


def check_catch(error: BaseException | None, catch: dict[str, Any], where: str) -> None:
    """``error`` is the AIO error ``catch`` describes, field by field."""
    assert error is not None, f"{where}: expected a {catch['error-kind']!r} error, got none"
    assert isinstance(error, AioError), f"{where}: not an AioError: {error!r}"
    assert error.kind.value == catch["error-kind"], f"{where}: kind {error.kind.value!r}: {error}"
    if "is-shallow" in catch:
        assert error.is_shallow == catch["is-shallow"], f"{where}: is_shallow of {error!r}"
    if "is-remote" in catch:
        assert error.is_remote == catch["is-remote"], f"{where}: is_remote of {error!r}"
    if "message" in catch:
        assert str(error) == catch["message"], f"{where}: message"
    for key, expected in (catch.get("supplemental") or {}).items():
        actual = _supplemental(error, key)
        assert actual == expected, f"{where}: supplemental {key}: {actual!r} != {expected!r}"


def _supplemental(error: AioError, key: str) -> str | None:
    if key == "property-name":
        return None if error.property_name is None else error.property_name.lower()
    if key == "property-value":
        value = error.property_value
        return None if value is None else str(value)
    if key == "header-name":
        return error.header_name
    if key == "header-value":
        return error.header_value
    if key == "timeout-name":
        return None if error.timeout_name is None else error.timeout_name.lower()
    if key == "timeout-value":
        return None if error.timeout_value is None else str(error.timeout_value)
    if key == "command-name":
        return error.command_name
    if key == "protocol-version":
        return error.protocol_version
    if key == "supported-protocols":
        return " ".join(str(v) for v in error.supported_major_versions)
    raise AssertionError(f"unknown supplemental field {key!r}")


def check_metadata(
    actual: Mapping[str, str], expected: Mapping[str, str | None], where: str
) -> None:
    """Each listed property has the value given; ``null`` means it must be absent."""
    for key, value in expected.items():
        if value is None:
            assert key not in actual, f"{where}: {key!r} must be absent, is {actual[key]!r}"
        else:
            assert actual.get(key) == value, f"{where}: {key!r}: {actual.get(key)!r} != {value!r}"


async def until(condition: Any, conn: MetlConnection, what: str) -> None:
    """Wait (event-driven, bounded) until ``condition()`` holds."""
    async with asyncio.timeout(STEP):
        while not condition():
            await conn.changed()
    assert condition(), what


async def common_action(conn: MetlConnection, action: dict[str, Any], envoy: str) -> None:
    """The actions every envoy's cases share."""
    kind = action["action"]
    if kind == "disconnect":
        conn.disconnect()
    elif kind in ("freeze time", "unfreeze time"):
        conn.frozen = kind == "freeze time"
    elif kind == "sleep":
        await asyncio.sleep(seconds(action["duration"]) or 0.0)  # the case's own pause
    else:
        raise AssertionError(f"unknown {envoy} action {kind!r}")


async def common_epilogue(conn: MetlConnection, key: str, value: Any) -> bool:
    """Check the epilogue fields every envoy's cases share; False for any other field."""
    if key == "subscribed-topics":
        assert sorted(conn.subscribed) == sorted(value), f"subscribed {conn.subscribed}"
    elif key == "acknowledgement-count":
        # Acknowledgements may follow a last response's PUBACK: wait for them, then count.
        await until(lambda: len(conn.acknowledged) >= value, conn, "acknowledgements")
        assert len(conn.acknowledged) == value, f"acknowledged {conn.acknowledged}"
    elif key == "publication-count":
        assert len(conn.publications) == value, f"published {len(conn.publications)}"
    else:
        return False
    return True


# ---------------------------------------------------------------- TelemetrySender


async def run_sender(case: dict[str, Any], defaults: dict[str, Any]) -> None:
    prologue = case["prologue"]
    conn = connection(prologue)
    sender_defaults = defaults["prologue"]["sender"]
    senders: list[TelemetrySender[Any]] = []
    try:
        for given in prologue.get("senders") or []:
            config = merged(sender_defaults, given)
            senders.append(
                TelemetrySender(
                    conn,
                    given_value(config, "telemetry-topic"),
                    _serializer(config),
                    topic_namespace=config.get("topic-namespace"),
                    topic_tokens=config.get("topic-token-map"),
                )
            )
    except AioError as error:
        check_catch(error, prologue["catch"], "prologue")
        return
    assert "catch" not in prologue, "prologue: expected an error, the senders were created"

    outcomes: list[asyncio.Future[Any]] = []
    awaited = 0
    published_seen = 0
    for action in case.get("actions") or []:
        kind = action["action"]
        if kind == "send telemetry":
            spec = merged(defaults["actions"]["send-telemetry"], action)
            outcomes.append(_send(senders[0], spec))
        elif kind == "await publish":
            published_seen += 1
            await until(lambda n=published_seen: len(conn.publications) >= n, conn, "await publish")
        elif kind == "await send":
            future = outcomes[awaited]
            awaited += 1
            failure: BaseException | None = None
            try:
                async with asyncio.timeout(STEP):
                    await future
            except Exception as exc:
                failure = exc
            if "catch" in action:
                check_catch(failure, action["catch"], "await send")
            else:
                assert failure is None, f"await send: {failure!r}"
        else:
            await common_action(conn, action, "sender")

    epilogue = case.get("epilogue") or {}
    for key, value in epilogue.items():
        if await common_epilogue(conn, key, value):
            continue
        assert key == "published-messages", f"unknown sender epilogue field {key!r}"
        for index, expected in enumerate(value):
            assert index < len(conn.publications), f"published message {index} missing"
            check_publication(conn.publications[index], expected, conn, f"published {index}")


def _send(sender: TelemetrySender[Any], spec: dict[str, Any]) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    event = spec.get("cloud-event")
    cloud_event = None
    if event is not None:
        cloud_event = CloudEvent(
            source=event["source"],
            **{
                name: event[key]
                for key, name in (
                    ("type", "type"),
                    ("spec-version", "spec_version"),
                    ("id", "id"),
                    ("time", "time"),
                    ("subject", "subject"),
                    ("data-schema", "data_schema"),
                )
                if key in event
            },
        )
    timeout = seconds(spec.get("timeout"))
    try:
        outcome = sender.send(
            spec.get("telemetry-value"),
            topic_tokens=spec.get("topic-token-map"),
            metadata=spec.get("metadata"),
            cloud_event=cloud_event,
            message_expiry_interval=None if timeout is None else int(timeout),
        )
    except Exception as exc:
        future.set_exception(exc)
        return future
    return settle(outcome, future)


def settle(outcome: Any, future: asyncio.Future[Any]) -> asyncio.Future[Any]:
    """``future`` completed by the first value or the error of the observable ``outcome``."""

    def on_next(value: Any) -> None:
        if not future.done():
            future.set_result(value)

    def on_error(error: Exception) -> None:
        if not future.done():
            future.set_exception(error)

    outcome.subscribe(on_next=on_next, on_error=on_error)
    return future


def check_publication(
    message: Message, expected: dict[str, Any], conn: MetlConnection, where: str
) -> None:
    props = message.properties
    for key, value in expected.items():
        if key == "topic":
            assert message.topic == value, f"{where}: topic"
        elif key == "payload":
            actual = None if not message.payload else message.payload.decode("utf-8")
            assert actual == value, f"{where}: payload {actual!r}"
        elif key == "content-type":
            assert props.content_type == value, f"{where}: content type {props.content_type!r}"
        elif key == "format-indicator":
            actual_indicator = props.payload_format_indicator or 0
            assert actual_indicator == value, f"{where}: format indicator"
        elif key == "metadata":
            check_metadata(dict(props.user_properties), value, f"{where}: metadata")
        elif key == "source-id":
            assert dict(props.user_properties).get("__srcId") == value, f"{where}: source id"
        elif key == "expiry":
            assert props.message_expiry_interval == value, f"{where}: expiry"
        else:
            raise AssertionError(f"{where}: unknown published-message field {key!r}")


# ---------------------------------------------------------------- TelemetryReceiver


async def run_receiver(case: dict[str, Any], defaults: dict[str, Any]) -> None:
    prologue = case["prologue"]
    conn = connection(prologue)
    receiver_defaults = defaults["prologue"]["receiver"]
    received: list[tuple[int, Telemetry[Any]]] = []
    errors: list[BaseException] = []
    receivers: list[TelemetryReceiver[Any]] = []
    try:
        for index, given in enumerate(prologue.get("receivers") or []):
            config = merged(receiver_defaults, given)
            receiver = TelemetryReceiver(
                conn,
                given_value(config, "telemetry-topic"),
                _serializer(config),
                topic_namespace=config.get("topic-namespace"),
                topic_tokens=config.get("topic-token-map"),
            )
            receivers.append(receiver)
            receiver.telemetry.subscribe(on_next=_recorder(received, index), on_error=errors.append)
            if errors:
                raise errors[0]
    except AioError as error:
        check_catch(error, prologue["catch"], "prologue")
        return
    assert "catch" not in prologue, "prologue: expected an error, the receivers started"

    packet_ids: dict[int, int] = {}
    for action in case.get("actions") or []:
        kind = action["action"]
        if kind == "receive telemetry":
            spec = merged(defaults["actions"]["receive-telemetry"], action)
            packet_id = _packet_id(packet_ids, spec.get("packet-index"))
            conn.inject(_telemetry_message(spec), packet_id)
        elif kind == "await acknowledgement":
            await _await_ack(conn, packet_ids, action)
        else:
            await common_action(conn, action, "receiver")

    epilogue = case.get("epilogue") or {}
    assert not errors, f"receiver errors: {errors!r}"
    for key, value in epilogue.items():
        if await common_epilogue(conn, key, value):
            pass
        elif key == "telemetry-count":
            assert len(received) == value, f"telemetry count {len(received)}"
        elif key == "telemetry-counts":
            for index_text, count in value.items():
                got = sum(1 for i, _ in received if i == int(index_text))
                assert got == count, f"telemetry count of receiver {index_text}: {got}"
        elif key == "received-telemetries":
            assert len(received) >= len(value), f"received {len(received)} telemetries"
            for index, expected in enumerate(value):
                check_telemetry(received[index][1], expected, f"telemetry {index}")
        elif key == "catch":
            raise AssertionError("epilogue catch: not driven for receivers")
        else:
            raise AssertionError(f"unknown receiver epilogue field {key!r}")


def _recorder(
    received: list[tuple[int, Telemetry[Any]]], index: int
) -> Callable[[Telemetry[Any]], None]:
    """Records what receiver ``index`` relays."""
    return lambda item: received.append((index, item))


def source_id(index: int) -> str:
    """The client id the cases' ``source-index`` stands for."""
    return f"MetlSource{index}"


def _injected(spec: dict[str, Any], user: list[tuple[str, str]], **properties: Any) -> Message:
    """The PUBLISH a case injects: its topic, payload, QoS, expiry, content type and format
    indicator, the ``user`` properties, and any other ``properties`` (correlation data, ...)."""
    expiry = seconds(spec.get("message-expiry"))
    payload = spec.get("payload")
    return Message(
        spec["topic"],
        b"" if payload is None else payload.encode("utf-8"),
        spec.get("qos", 1),
        properties=PublishProperties(
            message_expiry_interval=None if expiry is None else int(expiry),
            content_type=spec.get("content-type"),
            payload_format_indicator=spec.get("format-indicator"),
            user_properties=tuple(user),
            **properties,
        ),
    )


def _telemetry_message(spec: dict[str, Any]) -> Message:
    user = list((spec.get("metadata") or {}).items())
    if spec.get("source-index") is not None:
        user.append(("__srcId", source_id(spec["source-index"])))
    return _injected(spec, user)


_CLOUD_EVENT_FIELDS = {
    "source": "source",
    "type": "type",
    "spec-version": "spec_version",
    "id": "id",
    "time": "time",
    "data-content-type": "data_content_type",
    "subject": "subject",
    "data-schema": "data_schema",
}


def check_telemetry(item: Telemetry[Any], expected: dict[str, Any], where: str) -> None:
    for key, value in expected.items():
        if key == "telemetry-value":
            assert item.value == value, f"{where}: value {item.value!r}"
        elif key == "metadata":
            check_metadata(item.metadata, value, f"{where}: metadata")
        elif key == "topic-tokens":
            assert dict(item.tokens) == value, f"{where}: tokens {dict(item.tokens)}"
        elif key == "cloud-event":
            if value is None:
                assert item.cloud_event is None, f"{where}: unexpected {item.cloud_event!r}"
                continue
            assert item.cloud_event is not None, f"{where}: no cloud event"
            for field_key, expected_value in value.items():
                actual = getattr(item.cloud_event, _CLOUD_EVENT_FIELDS[field_key])
                assert actual == expected_value, f"{where}: cloud event {field_key}: {actual!r}"
        elif key == "source-index":
            assert item.source_id == source_id(value), f"{where}: source {item.source_id!r}"
        else:
            raise AssertionError(f"{where}: unknown received-telemetry field {key!r}")


# ---------------------------------------------------------------- CommandInvoker


def _serializer(config: dict[str, Any]) -> Any:
    """The case's serializer (typed ``Any``: it stands in for any value type)."""
    ser = config.get("serializer") or {}
    return MetlSerializer(
        content_type=ser.get("out-content-type"),
        payload_format_indicator=1 if ser.get("indicate-character-data") else 0,
        accept_content_types=tuple(ser.get("accept-content-types") or ()),
        allow_character_data=ser.get("allow-character-data", True),
        fail_deserialization=ser.get("fail-deserialization", False),
    )


_INVOKER_TOPIC_ARGS = {
    "response-topic-prefix": "response_topic_prefix",
    "response-topic-suffix": "response_topic_suffix",
    "response-topic-pattern": "response_topic",
    "topic-namespace": "topic_namespace",
    "topic-token-map": "topic_tokens",
}


async def run_invoker(case: dict[str, Any], defaults: dict[str, Any]) -> None:
    prologue = case["prologue"]
    conn = connection(prologue)
    invokers: list[CommandInvoker[Any, Any]] = []
    try:
        for given in prologue.get("invokers") or []:
            config = merged(defaults["prologue"]["invoker"], given)
            invokers.append(
                CommandInvoker(
                    conn,
                    given_value(config, "request-topic"),
                    command_name=given_value(config, "command-name"),
                    serializer=_serializer(config),
                    **{
                        arg: config[key]
                        for key, arg in _INVOKER_TOPIC_ARGS.items()
                        if key in config
                    },
                )
            )
            await invokers[-1].start()
    except AioError as error:
        check_catch(error, prologue["catch"], "prologue")
        return
    assert "catch" not in prologue, "prologue: expected an error, the invokers were created"

    invocations: dict[int, asyncio.Future[Any]] = {}
    correlations: dict[int, bytes] = {}
    packet_ids: dict[int, int] = {}
    seen = 0
    for action in case.get("actions") or []:
        kind = action["action"]
        if kind == "invoke command":
            spec = merged(defaults["actions"]["invoke-command"], action)
            invocations[spec["invocation-index"]] = _invoke(invokers[0], spec)
        elif kind == "await publish":
            seen += 1
            await until(lambda n=seen: len(conn.publications) >= n, conn, "await publish")
            data = conn.publications[seen - 1].properties.correlation_data
            if "correlation-index" in action and data is not None:
                correlations[action["correlation-index"]] = data
        elif kind == "receive response":
            spec = merged(defaults["actions"]["receive-response"], action)
            packet_id = _packet_id(packet_ids, spec.get("packet-index"))
            conn.inject(_response_message(spec, correlations), packet_id)
        elif kind == "await invocation":
            await _await_invocation(invocations[action["invocation-index"]], action)
        elif kind == "await acknowledgement":
            await _await_ack(conn, packet_ids, action)
        else:
            await common_action(conn, action, "invoker")

    epilogue = case.get("epilogue") or {}
    for key, value in epilogue.items():
        if await common_epilogue(conn, key, value):
            pass
        elif key == "published-messages":
            for index, expected in enumerate(value):
                fields = dict(expected)
                data = correlations[fields.pop("correlation-index")]
                found = [m for m in conn.publications if m.properties.correlation_data == data]
                assert found, f"request {index} (correlation {data.hex()}) not published"
                check_publication(found[-1], fields, conn, f"request {index}")
                assert len(data) == 16, f"request {index}: correlation data is not a GUID"
        else:
            raise AssertionError(f"unknown invoker epilogue field {key!r}")


def _packet_id(packet_ids: dict[int, int], index: int | None) -> int:
    """The packet id for a case's ``packet-index`` (the same index, the same id: a
    re-delivery); a PUBLISH without one gets a fresh id."""
    if index is None:
        index = -1 - sum(1 for k in packet_ids if k < 0)
    return packet_ids.setdefault(index, len(packet_ids) + 1)


async def _await_ack(conn: MetlConnection, packet_ids: dict[int, int], action: Any) -> None:
    index = action.get("packet-index")
    if index is None:
        await until(lambda: len(conn.acknowledged) > 0, conn, "await acknowledgement")
        return
    packet_id = packet_ids[index]
    await until(lambda: packet_id in conn.acknowledged, conn, "await acknowledgement")


def _invoke(invoker: CommandInvoker[Any, Any], spec: dict[str, Any]) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    timeout = seconds(spec.get("timeout"))
    try:
        outcome = invoker.invoke_response(
            spec.get("request-value"),
            timeout=timeout if timeout is not None else 10.0,
            topic_tokens=spec.get("topic-token-map"),
            metadata=spec.get("metadata"),
        )
    except Exception as exc:
        future.set_exception(exc)
        return future
    return settle(outcome, future)


async def _await_invocation(future: asyncio.Future[Any], action: dict[str, Any]) -> None:
    error: BaseException | None = None
    response: Any = None
    try:
        async with asyncio.timeout(STEP):
            response = await future
    except Exception as exc:
        error = exc
    if "catch" in action:
        check_catch(error, action["catch"], "await invocation")
        return
    assert error is None, f"await invocation: {error!r}"
    if "response-value" in action:
        assert response.value == action["response-value"], f"response {response.value!r}"
    if "metadata" in action:
        check_metadata(response.metadata, action["metadata"], "response metadata")


def _response_message(spec: dict[str, Any], correlations: dict[int, bytes]) -> Message:
    user = list((spec.get("metadata") or {}).items())
    if spec.get("status") is not None:
        user.append(("__stat", spec["status"]))
    if spec.get("status-message") is not None:
        user.append(("__stMsg", spec["status-message"]))
    if spec.get("is-application-error") is not None:
        user.append(("__apErr", spec["is-application-error"]))
    if spec.get("invalid-property-name") is not None:
        user.append(("__propName", spec["invalid-property-name"]))
    if spec.get("invalid-property-value") is not None:
        user.append(("__propVal", spec["invalid-property-value"]))
    index = spec.get("correlation-index")
    return _injected(
        spec,
        user,
        correlation_data=None if index is None else correlations.get(index, b"unknown"),
    )


# ---------------------------------------------------------------- CommandExecutor


class Countdowns:
    """The cases' countdown events: ``signal`` counts one down, ``wait`` waits for zero."""

    def __init__(self, initial: dict[str, int]) -> None:
        self._counts = dict(initial)
        self._zero = {name: asyncio.Event() for name in initial}
        for name, count in initial.items():
            if count <= 0:
                self._zero[name].set()

    def signal(self, name: str) -> None:
        self._counts[name] -= 1
        if self._counts[name] <= 0:
            self._zero[name].set()

    async def wait(self, name: str) -> None:
        await self._zero[name].wait()


class MetlHandler:
    """The cases' command handler: answers from ``request-responses-map`` (the n-th execution
    of a request value gets its n-th response), after its ``sync`` steps."""

    def __init__(self, config: dict[str, Any], countdowns: Countdowns) -> None:
        self.config = config
        self.countdowns = countdowns
        self.executions = 0
        self.per_value: dict[Any, int] = {}

    async def __call__(self, request: CommandRequest[Any]) -> CommandResult[Any]:
        self.executions += 1
        for step in self.config.get("sync") or []:
            if "signal-event" in step:
                self.countdowns.signal(step["signal-event"])
            if "wait-event" in step:
                await self.countdowns.wait(step["wait-event"])
        if self.config.get("raise-error"):
            raise RuntimeError("the case's handler raises")
        responses = (self.config.get("request-responses-map") or {}).get(request.value) or [None]
        n = self.per_value.get(request.value, 0)
        self.per_value[request.value] = n + 1
        metadata: dict[str, str] = {}
        for name, value in (self.config.get("response-metadata") or {}).items():
            copied = request.metadata.get(name) if value is None else value
            if copied is not None:
                metadata[name] = copied
        prefix = self.config.get("token-metadata-prefix")
        if prefix is not None:
            metadata.update({f"{prefix}{k}": v for k, v in request.tokens.items()})
        return CommandResult(responses[min(n, len(responses) - 1)], metadata)


async def run_executor(case: dict[str, Any], defaults: dict[str, Any]) -> None:
    prologue = case["prologue"]
    conn = connection(prologue)
    countdowns = Countdowns(prologue.get("countdown-events") or {})
    handlers: list[MetlHandler] = []
    executors: list[CommandExecutor[Any, Any]] = []
    try:
        for given in prologue.get("executors") or []:
            config = merged(defaults["prologue"]["executor"], given)
            handler = MetlHandler(config, countdowns)
            handlers.append(handler)
            timeout = seconds(config.get("execution-timeout"))
            cache_ttl = seconds(config.get("cache-ttl"))
            executors.append(
                CommandExecutor(
                    conn,
                    given_value(config, "request-topic"),
                    handler,
                    serializer=_serializer(config),
                    command_name=given_value(config, "command-name"),
                    executor_id=config.get("executor-id"),
                    topic_namespace=config.get("topic-namespace"),
                    topic_tokens=config.get("topic-token-map"),
                    execution_timeout=timeout,
                    max_concurrency=config.get("execution-concurrency"),
                    with_context=True,
                    **({} if cache_ttl is None else {"dedup_ttl": cache_ttl}),
                )
            )
            await executors[-1].start()
    except AioError as error:
        check_catch(error, prologue["catch"], "prologue")
        return
    assert "catch" not in prologue, "prologue: expected an error, the executors were created"

    correlations: dict[int, bytes] = {}
    packet_ids: dict[int, int] = {}
    seen = 0
    for action in case.get("actions") or []:
        kind = action["action"]
        if kind == "receive request":
            spec = merged(defaults["actions"]["receive-request"], action)
            packet_id = _packet_id(packet_ids, spec.get("packet-index"))
            conn.inject(_request_message(spec, correlations), packet_id)
        elif kind == "await publish":
            seen += 1
            await until(lambda n=seen: len(conn.publications) >= n, conn, "await publish")
            if "correlation-index" in action:
                data = conn.publications[seen - 1].properties.correlation_data
                assert data == correlations.get(action["correlation-index"]), "await publish"
        elif kind == "await acknowledgement":
            await _await_ack(conn, packet_ids, action)
        elif kind == "sync":
            if "signal-event" in action:
                countdowns.signal(action["signal-event"])
            if "wait-event" in action:
                async with asyncio.timeout(STEP):
                    await countdowns.wait(action["wait-event"])
        else:
            await common_action(conn, action, "executor")

    epilogue = case.get("epilogue") or {}
    for key, value in epilogue.items():
        if await common_epilogue(conn, key, value):
            pass
        elif key == "execution-count":
            got = sum(h.executions for h in handlers)
            assert got == value, f"executions {got}"
        elif key == "execution-counts":
            for index_text, count in value.items():
                got = handlers[int(index_text)].executions
                assert got == count, f"executions of executor {index_text}: {got}"
        elif key == "published-messages":
            for index, expected in enumerate(value):
                check_response(conn, correlations, expected, f"response {index}")
        elif key == "catch":
            raise AssertionError("epilogue catch: not driven for executors")
        else:
            raise AssertionError(f"unknown executor epilogue field {key!r}")


def check_response(
    conn: MetlConnection, correlations: dict[int, bytes], expected: dict[str, Any], where: str
) -> None:
    fields = dict(expected)
    index = fields.pop("correlation-index")
    data = None if index is None else correlations[index]
    found = [m for m in conn.publications if m.properties.correlation_data == data]
    assert found, f"{where}: no response with correlation {data!r}"
    message = found[0]
    user = dict(message.properties.user_properties)
    if "command-status" in fields:
        status = fields.pop("command-status")
        actual = user.get("__stat")
        assert actual == (None if status is None else str(status)), f"{where}: status {actual}"
    if "is-application-error" in fields:
        flag = fields.pop("is-application-error")
        actual_flag = user.get("__apErr", "false").lower() == "true"
        assert actual_flag == flag, f"{where}: __apErr {user.get('__apErr')!r}"
    check_publication(message, fields, conn, where)


def _request_message(spec: dict[str, Any], correlations: dict[int, bytes]) -> Message:
    user = list((spec.get("metadata") or {}).items())
    if spec.get("source-index") is not None:
        user.append(("__srcId", source_id(spec["source-index"])))
    index = spec.get("correlation-index")
    data: bytes | None
    if "correlation-id" in spec:
        data = spec["correlation-id"].encode("utf-8")
    elif index is None:
        data = None
    else:
        data = correlations.setdefault(index, uuid.uuid4().bytes)
    if index is not None and data is not None:
        correlations[index] = data
    return _injected(spec, user, response_topic=spec.get("response-topic"), correlation_data=data)
