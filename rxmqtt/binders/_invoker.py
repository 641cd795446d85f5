"""``CommandInvoker``: AIO commands from the calling side.

Each ``invoke`` publishes one request to the command's request topic with a Response Topic, a
fresh 16-byte Correlation Data (a UUID), a Message Expiry Interval of ``ceil(timeout)`` seconds
and the AIO reserved properties, and returns an observable of the one response. All invocations
share one subscription to the response filter (taken on the first ``invoke``, ref-counted by the
connection, released on ``dispose``); responses are matched by correlation data, so a duplicate
or late response finds nothing and is reported on ``ignored``. A response's ``__stat`` and the
other reserved properties map onto the AIO error model (:class:`CommandExecutionError` for what
the executor reported, :class:`AioError` for what is wrong with the response itself).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar, overload

from reactivex import Observable, abc
from reactivex.subject import Subject

from rxmqtt.errors import ConnectionClosedError, MessageDroppedError
from rxmqtt.message import Message, PublishProperties
from rxmqtt.queue import DropReason

from .._outcome import Outcome
from ..message import check_qos
from ._acks import Delivery, deliveries
from ._connection import MqttConnection
from ._envoy import Envoy
from ._errors import (
    AioError,
    CommandTimeoutError,
    EnvoyDisposedError,
    ErrorKind,
    InvalidConfigurationError,
    PayloadError,
    configuration_error,
    mqtt_error,
)
from ._hlc import Timestamp
from ._metadata import application_metadata, outgoing_metadata
from ._protocol import (
    PROTOCOL_VERSION_PROPERTY,
    STATUS_PROPERTY,
    SUPPORTED_MAJOR_VERSIONS,
    TIMESTAMP_PROPERTY,
    check_timeout,
    expiry_for,
    parse_timestamp,
    parse_version,
)
from ._response_status import remote_error
from ._serializers import JSON, Serializer, check_serializer, content_acceptable
from ._topic_pattern import TopicPattern, check_token_map

log = logging.getLogger("rxmqtt.binders")

Req = TypeVar("Req")
Resp = TypeVar("Resp")

DEFAULT_TIMEOUT = 10.0
"""Seconds an invocation waits for its response unless told otherwise."""

PARTITION_PROPERTY = "$partition"
"""The user property a broker with partitioned shared subscriptions routes by (AIO sets it to
the invoker's client id)."""

CONSTRUCTION_TOKENS = ("modelId", "commandName", "invokerClientId")
"""Tokens that must have their value (from ``topic_tokens``) when an invoker is created; the
others (``{executorId}``, custom ones) may come per call."""


@dataclass(frozen=True, slots=True)
class CommandResponse(Generic[Resp]):
    """A successful response: the decoded value and what came with it."""

    value: Resp
    metadata: Mapping[str, str]
    """The executor's application user properties (none starting with ``__``)."""
    timestamp: datetime | None
    """The wall-clock part of the response's ``__ts``."""
    message: Message
    """The raw MQTT response."""


@dataclass(eq=False, slots=True)
class _Pending(Generic[Resp]):
    """One invocation waiting for its response."""

    result: Outcome[CommandResponse[Resp]]
    timeout: float
    correlation: bytes
    timer: abc.DisposableBase | None = None
    publish: abc.DisposableBase | None = field(default=None)

    def release(self) -> None:
        if self.timer is not None:
            self.timer.dispose()
        if self.publish is not None:
            self.publish.dispose()


class CommandInvoker(Envoy, Generic[Req, Resp]):
    """Invokes the command served at ``request_topic`` (an AIO topic pattern) by executors.

    Topic tokens: ``{invokerClientId}`` is this client id; the others come from ``topic_tokens``
    here or per ``invoke`` (``{modelId}`` and ``{commandName}`` must be known here, as in AIO).
    ``command_name`` names the command in errors and logs.

    The response topic is, in order of precedence, the ``response_topic`` pattern;
    ``{response_topic_prefix}/{request topic}/{response_topic_suffix}`` when either is given;
    else ``clients/{invokerClientId}/{request topic}``, so a broker ACL can keep each
    client to its own responses. ``topic_namespace`` is prepended to both. ``serializer``
    encodes requests and, unless ``response_serializer`` is given, decodes responses (both
    default to JSON); a response whose content type the deserializer does not accept fails
    with ``invalid header``. Call ``invoke`` on the connection's loop thread (or inject
    ``scheduler``).
    """

    @overload
    def __init__(
        self: CommandInvoker[Any, Any],
        conn: MqttConnection,
        request_topic: str,
        *,
        command_name: str = "command",
        response_topic_prefix: str | None = None,
        response_topic_suffix: str | None = None,
        response_topic: str | None = None,
        topic_namespace: str | None = None,
        topic_tokens: Mapping[str, str] | None = None,
        serializer: None = None,
        response_serializer: None = None,
        timeout: float = DEFAULT_TIMEOUT,
        qos: int = 1,
        scheduler: abc.SchedulerBase | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: CommandInvoker[Req, Req],
        conn: MqttConnection,
        request_topic: str,
        *,
        command_name: str = "command",
        response_topic_prefix: str | None = None,
        response_topic_suffix: str | None = None,
        response_topic: str | None = None,
        topic_namespace: str | None = None,
        topic_tokens: Mapping[str, str] | None = None,
        serializer: Serializer[Req],
        response_serializer: None = None,
        timeout: float = DEFAULT_TIMEOUT,
        qos: int = 1,
        scheduler: abc.SchedulerBase | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: CommandInvoker[Any, Resp],
        conn: MqttConnection,
        request_topic: str,
        *,
        command_name: str = "command",
        response_topic_prefix: str | None = None,
        response_topic_suffix: str | None = None,
        response_topic: str | None = None,
        topic_namespace: str | None = None,
        topic_tokens: Mapping[str, str] | None = None,
        serializer: None = None,
        response_serializer: Serializer[Resp],
        timeout: float = DEFAULT_TIMEOUT,
        qos: int = 1,
        scheduler: abc.SchedulerBase | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        conn: MqttConnection,
        request_topic: str,
        *,
        command_name: str = "command",
        response_topic_prefix: str | None = None,
        response_topic_suffix: str | None = None,
        response_topic: str | None = None,
        topic_namespace: str | None = None,
        topic_tokens: Mapping[str, str] | None = None,
        serializer: Serializer[Req],
        response_serializer: Serializer[Resp],
        timeout: float = DEFAULT_TIMEOUT,
        qos: int = 1,
        scheduler: abc.SchedulerBase | None = None,
    ) -> None: ...

    def __init__(
        self,
        conn: MqttConnection,
        request_topic: str,
        *,
        command_name: str = "command",
        response_topic_prefix: str | None = None,
        response_topic_suffix: str | None = None,
        response_topic: str | None = None,
        topic_namespace: str | None = None,
        topic_tokens: Mapping[str, str] | None = None,
        serializer: Serializer[Any] | None = None,
        response_serializer: Serializer[Any] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        qos: int = 1,
        scheduler: abc.SchedulerBase | None = None,
    ) -> None:
        super().__init__(conn, scheduler=scheduler)
        if not isinstance(command_name, str) or not command_name:
            raise configuration_error("commandname", command_name, "must be a non-empty str")
        self._command_name = command_name
        tokens = {
            **check_token_map(topic_tokens, "topic_tokens"),
            "invokerClientId": self._conn.settings.client_id,
        }
        self._tokens = tokens
        request = TopicPattern.parse(
            request_topic,
            namespace=topic_namespace,
            argument="request_topic",
            name="requesttopicpattern",
            tokens=tokens,
        )
        request.require(*CONSTRUCTION_TOKENS)
        self._request = request
        if response_topic is not None:
            response = TopicPattern.parse(
                response_topic,
                namespace=topic_namespace,
                argument="response_topic",
                name="responsetopicpattern",
                tokens=tokens,
            )
        else:
            parts = [request_topic]
            if response_topic_prefix is not None:
                prefix = TopicPattern.parse(
                    response_topic_prefix,
                    argument="response_topic_prefix",
                    name="responsetopicprefix",
                    tokens=tokens,
                )
                prefix.require(*CONSTRUCTION_TOKENS)
                parts.insert(0, response_topic_prefix)
            if response_topic_suffix is not None:
                suffix = TopicPattern.parse(
                    response_topic_suffix,
                    argument="response_topic_suffix",
                    name="responsetopicsuffix",
                    tokens=tokens,
                )
                suffix.require(*CONSTRUCTION_TOKENS)
                parts.append(response_topic_suffix)
            if response_topic_prefix is None and response_topic_suffix is None:
                parts.insert(0, "clients/{invokerClientId}")
            response = TopicPattern.parse(
                "/".join(parts),
                namespace=topic_namespace,
                argument="response_topic",
                name="responsetopicpattern",
                tokens=tokens,
            )
        response.require(*CONSTRUCTION_TOKENS)
        self._response = response
        self._response_filter = response.filter()
        if serializer is None:
            serializer = JSON
        check_serializer(serializer, "serializer")
        if response_serializer is None:
            response_serializer = serializer
        check_serializer(response_serializer, "response_serializer")
        self._serializer: Serializer[Req] = serializer
        self._response_serializer: Serializer[Resp] = response_serializer
        self._timeout = _check_command_timeout(timeout)
        self._qos = check_qos(qos)
        self._pending: dict[bytes, _Pending[Resp]] = {}
        self._responses: abc.DisposableBase | None = None
        self._responses_token: object | None = None
        self._refused: AioError | None = None
        self._ignored: Subject[Message] = Subject()

    @property
    def request_topic(self) -> str:
        """The request topic pattern (namespace included)."""
        return self._request.pattern

    @property
    def response_topic(self) -> str:
        """The filter this invoker subscribes to for responses (open tokens as ``+``)."""
        return self._response_filter

    @property
    def pending(self) -> int:
        """Invocations still waiting for their response."""
        return len(self._pending)

    @property
    def ignored(self) -> Observable[Message]:
        """Responses that matched no waiting invocation: duplicates, late ones (after their
        timeout), or another invoker's on a shared response topic. Completes on dispose."""
        return self._ignored

    def start(self) -> Observable[None]:
        """Subscribe to the response filter now rather than on the first ``invoke``; the
        (awaitable) observable completes once the broker granted it, or errors with an ``mqtt
        error`` :class:`AioError` when it was refused."""
        self._check_live("start")
        self._refused = None
        self._ensure_responses()
        return self._granted(
            self._response_filter,
            f"response subscription {self._response_filter!r}",
            self._refused,
        )

    def invoke(
        self,
        request: Req,
        *,
        timeout: float | None = None,
        topic_tokens: Mapping[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Observable[Resp]:
        """Send ``request`` now and return an (awaitable) observable of the one response value.

        See :meth:`invoke_response` for the arguments and the errors.
        """
        full = self.invoke_response(
            request, timeout=timeout, topic_tokens=topic_tokens, metadata=metadata
        )
        result: Outcome[Resp] = Outcome()
        full.subscribe(lambda response: result._resolve(response.value), result._fail)
        return result

    def invoke_response(
        self,
        request: Req,
        *,
        timeout: float | None = None,
        topic_tokens: Mapping[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Observable[CommandResponse[Resp]]:
        """Send ``request`` now; the (awaitable) observable emits the :class:`CommandResponse`.

        ``topic_tokens`` fill the request (and response) topic's remaining tokens, e.g.
        ``{"executorId": "oven-2"}``; ``metadata`` become user properties. It errors with
        :class:`CommandTimeoutError`, :class:`CommandExecutionError` (what the executor
        reported), :class:`AioError` (a response this invoker cannot accept: missing/invalid
        header, unsupported version, ...), :class:`PayloadError`, or an ``mqtt error``
        :class:`AioError` (the request could not be published). Raises at once
        :class:`InvalidConfigurationError` for a bad timeout, a missing token or a reserved
        metadata name, :class:`PayloadError` for a value the serializer cannot encode. The
        request is sent eagerly, once; wrap it in ``reactivex.defer`` for a cold version.
        """
        self._check_live("invoke")
        seconds = self._timeout if timeout is None else _check_command_timeout(timeout)
        tokens = {**self._tokens, **check_token_map(topic_tokens, "topic_tokens")}
        topic = self._request.topic(tokens, argument="request_topic")
        response_topic = self._response.topic(tokens, argument="response_topic")
        user = outgoing_metadata(metadata)
        if not any(name == PARTITION_PROPERTY for name, _ in user):
            user.append((PARTITION_PROPERTY, self._conn.settings.client_id))
        try:
            payload = self._serializer.serialize(request)
        except (TypeError, ValueError) as exc:
            raise PayloadError(
                f"request: {type(self._serializer).__name__} cannot serialize "
                f"{type(request).__name__}: {exc}"
            ) from exc
        scheduler = self._timer_scheduler("invoke")
        correlation = uuid.uuid4().bytes
        properties = PublishProperties(
            message_expiry_interval=expiry_for(seconds),
            content_type=self._serializer.content_type,
            response_topic=response_topic,
            correlation_data=correlation,
            payload_format_indicator=self._serializer.payload_format_indicator,
            user_properties=(*self._stamp(), *user),
        )
        self._ensure_responses()  # SUBSCRIBE leaves before the request, so no response is missed
        result: Outcome[CommandResponse[Resp]] = Outcome()
        pending = _Pending(result, seconds, correlation)
        self._pending[correlation] = pending
        pending.timer = scheduler.schedule_relative(
            seconds, lambda _scheduler, _state: self._on_timeout(correlation)
        )
        try:
            outcome = self._conn.publish(topic, payload, self._qos, properties=properties)
        except BaseException:
            self._pending.pop(correlation, None)
            pending.release()
            raise
        subscription = outcome.subscribe(
            on_error=lambda error: self._on_publish_failed(correlation, error)
        )
        if correlation in self._pending:
            pending.publish = subscription
        return result

    # ------------------------------------------------------------------ responses

    def _ensure_responses(self) -> None:
        if self._responses_token is not None:
            return
        token = object()
        self._responses_token = token
        subscription = deliveries(self._conn, self._response_filter, self._qos).subscribe(
            self._on_response,
            lambda error: self._responses_ended(token, error),
            lambda: self._responses_ended(token, None),
        )
        if self._responses_token is token:
            self._responses = subscription

    def _responses_ended(self, token: object, error: Exception | None) -> None:
        """The response subscription ended: the connection closed (or refused it). Fail what
        waits; the next ``invoke`` subscribes again."""
        if self._responses_token is not token:
            return
        self._responses_token = None
        self._responses = None
        if error is None:
            failure: Exception = ConnectionClosedError(
                f"the connection closed before the response on {self._response_filter!r} arrived"
            )
        else:
            failure = mqtt_error(error, f"response subscription {self._response_filter!r}")
            self._refused = failure
        self._fail_all(failure)

    def _on_response(self, delivery: Delivery) -> None:
        try:
            self._handle_response(delivery.message)
        finally:
            delivery.ack()

    def _handle_response(self, message: Message) -> None:
        correlation = message.properties.correlation_data
        pending = self._pending.pop(correlation, None) if correlation is not None else None
        if pending is None:
            log.debug("ignoring a response on %r that no invocation waits for", message.topic)
            self._ignored.on_next(message)
            return
        pending.release()
        outcome = self._outcome(message)
        if isinstance(outcome, Exception):
            pending.result._fail(outcome)
        else:
            pending.result._resolve(outcome)

    def _outcome(self, message: Message) -> CommandResponse[Resp] | Exception:
        """The decoded response, or the error the invocation ends with (AIO's checks, in
        AIO's order: version, timestamp, status, then content type and payload)."""
        properties = message.properties
        user = dict(properties.user_properties)
        version_text = user.get(PROTOCOL_VERSION_PROPERTY)
        version = parse_version(version_text)
        if version is None or version[0] not in SUPPORTED_MAJOR_VERSIONS:
            return AioError(
                ErrorKind.UNSUPPORTED_VERSION,
                f"the response's protocol version {version_text!r} is not supported",
                is_shallow=False,
                protocol_version=version_text,
                supported_major_versions=SUPPORTED_MAJOR_VERSIONS,
                request_topic=self.request_topic,
            )
        stamp = user.get(TIMESTAMP_PROPERTY)
        if stamp is not None:
            try:
                self.clock.update(Timestamp.decode(stamp))
            except AioError as refused:
                refused.request_topic = self.request_topic
                return refused
        status_text = user.get(STATUS_PROPERTY)
        if status_text is None:
            return AioError(
                ErrorKind.MISSING_HEADER,
                f"the response has no {STATUS_PROPERTY} property",
                is_shallow=False,
                header_name=STATUS_PROPERTY,
                request_topic=self.request_topic,
            )
        if not status_text.isdigit() or not 100 <= int(status_text) <= 999:
            return AioError(
                ErrorKind.INVALID_HEADER,
                f"the response's {STATUS_PROPERTY} {status_text!r} is not a status code",
                is_shallow=False,
                header_name=STATUS_PROPERTY,
                header_value=status_text,
                request_topic=self.request_topic,
            )
        status = int(status_text)
        if not 200 <= status <= 299:
            return remote_error(status, user, request_topic=self.request_topic)
        content_type = properties.content_type
        if not content_acceptable(
            self._response_serializer, content_type, properties.payload_format_indicator
        ):
            return AioError(
                ErrorKind.INVALID_HEADER,
                f"the response's content type {content_type!r} is not accepted",
                is_shallow=False,
                header_name="Content Type",
                header_value=content_type,
                request_topic=self.request_topic,
            )
        try:
            value = self._response_serializer.deserialize(message.payload)
        except Exception as exc:
            error = PayloadError(
                f"response to {self.request_topic!r}: "
                f"{type(self._response_serializer).__name__} cannot decode the payload "
                f"({len(message.payload)} bytes): {exc}",
                topic=message.topic,
            )
            error.__cause__ = exc
            return error
        return CommandResponse(
            value=value,
            metadata=application_metadata(message),
            timestamp=parse_timestamp(stamp),
            message=message,
        )

    def _on_timeout(self, correlation: bytes) -> None:
        pending = self._pending.pop(correlation, None)
        if pending is None:
            return
        pending.release()
        pending.result._fail(
            CommandTimeoutError(
                pending.timeout, request_topic=self.request_topic, correlation_data=correlation
            )
        )

    def _on_publish_failed(self, correlation: bytes, error: Exception) -> None:
        pending = self._pending.pop(correlation, None)
        if pending is None:
            return
        pending.release()
        failure: Exception
        if isinstance(error, MessageDroppedError) and error.reason == DropReason.EXPIRED.value:
            # Its expiry (the timeout) ran out in the offline queue: that is a timeout.
            failure = CommandTimeoutError(
                pending.timeout, request_topic=self.request_topic, correlation_data=correlation
            )
        else:
            failure = mqtt_error(error, f"request to {self.request_topic!r}")
        pending.result._fail(failure)

    def _fail_all(self, error: Exception) -> None:
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            entry.release()
            entry.result._fail(error)

    def _on_dispose(self) -> None:
        self._responses_token = None
        responses, self._responses = self._responses, None
        if responses is not None:
            responses.dispose()
        self._fail_all(
            EnvoyDisposedError(
                f"the invoker for {self.request_topic!r} was disposed before the response"
            )
        )
        self._ignored.on_completed()

    def _describe(self) -> str:
        return f" {self.request_topic!r} -> {self._response_filter!r}"


def _check_command_timeout(value: object) -> float:
    """A command timeout, or ``invalid configuration`` naming ``commandtimeout``."""
    try:
        return check_timeout(value)
    except (TypeError, ValueError) as exc:
        raise InvalidConfigurationError(
            ErrorKind.INVALID_CONFIGURATION,
            str(exc),
            is_shallow=True,
            property_name="commandtimeout",
            property_value=value,
        ) from None
