"""``CommandInvoker``: MQTT 5 request/response from the calling side.

Each ``invoke`` publishes one request to the command's request topic with a Response Topic, fresh
Correlation Data (a random UUID) and a Message Expiry Interval of ``ceil(timeout)`` seconds, and
returns an observable of the one response. All invocations of an invoker share one subscription
to its response topic (taken on the first ``invoke``, ref-counted by the connection, released on
``dispose``); responses are matched by correlation data, so a duplicate or late response -- one
whose invocation already finished -- finds nothing and is ignored (and reported on ``ignored``).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

from reactivex import Observable, abc
from reactivex.subject import Subject

from rxmqtt.errors import ConnectionClosedError, MessageDroppedError
from rxmqtt.message import Message, PublishProperties
from rxmqtt.queue import DropReason
from rxmqtt.topics import validate_topic

from .._outcome import Outcome
from ..message import check_qos
from ._connection import MqttConnection
from ._envoy import Envoy
from ._errors import CommandExecutionError, CommandTimeoutError, EnvoyDisposedError, PayloadError
from ._protocol import (
    STATUS_MESSAGE_PROPERTY,
    STATUS_PROPERTY,
    Status,
    check_timeout,
    expiry_for,
    user_property,
)
from ._serializers import JSON, Serializer, check_serializer

log = logging.getLogger("rxmqtt.binders")

Req = TypeVar("Req")
Resp = TypeVar("Resp")

DEFAULT_TIMEOUT = 10.0
"""Seconds an invocation waits for its response unless told otherwise."""


@dataclass(eq=False, slots=True)
class _Pending(Generic[Resp]):
    """One invocation waiting for its response."""

    result: Outcome[Resp]
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
    """Invokes the command served at ``request_topic`` by a :class:`CommandExecutor`.

    The response topic is ``{response_topic_prefix}/{client_id}/{request_topic}`` unless
    ``response_topic`` gives one; with the client id in it, a broker ACL can keep each client to
    its own responses. ``serializer`` encodes requests and, unless ``response_serializer`` is
    given, decodes responses (both default to JSON). Call ``invoke`` on the connection's loop
    thread (or inject ``scheduler``); it may be called before the connection is up -- the request
    waits in the offline queue for as long as its expiry allows.
    """

    @overload
    def __init__(
        self: CommandInvoker[Any, Any],
        conn: MqttConnection,
        request_topic: str,
        *,
        response_topic_prefix: str = "clients",
        response_topic: str | None = None,
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
        response_topic_prefix: str = "clients",
        response_topic: str | None = None,
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
        response_topic_prefix: str = "clients",
        response_topic: str | None = None,
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
        response_topic_prefix: str = "clients",
        response_topic: str | None = None,
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
        response_topic_prefix: str = "clients",
        response_topic: str | None = None,
        serializer: Serializer[Any] | None = None,
        response_serializer: Serializer[Any] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        qos: int = 1,
        scheduler: abc.SchedulerBase | None = None,
    ) -> None:
        super().__init__(conn, scheduler=scheduler)
        self._request_topic = validate_topic(request_topic, argument="request_topic")
        if response_topic is None:
            prefix = validate_topic(response_topic_prefix, argument="response_topic_prefix")
            response_topic = f"{prefix}/{self._conn.settings.client_id}/{self._request_topic}"
        self._response_topic = validate_topic(response_topic, argument="response_topic")
        if serializer is None:
            serializer = JSON
        check_serializer(serializer, "serializer")
        if response_serializer is None:
            response_serializer = serializer
        check_serializer(response_serializer, "response_serializer")
        self._serializer: Serializer[Req] = serializer
        self._response_serializer: Serializer[Resp] = response_serializer
        self._timeout = check_timeout(timeout)
        self._qos = check_qos(qos)
        self._pending: dict[bytes, _Pending[Resp]] = {}
        self._responses: abc.DisposableBase | None = None
        self._responses_token: object | None = None
        self._ignored: Subject[Message] = Subject()

    @property
    def request_topic(self) -> str:
        """Where requests go."""
        return self._request_topic

    @property
    def response_topic(self) -> str:
        """Where this invoker asks executors to respond (and what it subscribes to)."""
        return self._response_topic

    @property
    def pending(self) -> int:
        """Invocations still waiting for their response."""
        return len(self._pending)

    @property
    def ignored(self) -> Observable[Message]:
        """Responses that matched no waiting invocation: duplicates, late ones (after their
        timeout), or another invoker's on a shared response topic. Completes on dispose."""
        return self._ignored

    def invoke(self, request: Req, *, timeout: float | None = None) -> Observable[Resp]:
        """Send ``request`` now and return an (awaitable) observable of the one response.

        It emits the decoded response and completes, or errors with
        :class:`CommandTimeoutError` (no response within ``timeout`` seconds, default the
        invoker's), :class:`CommandExecutionError` (the executor answered with an error status),
        :class:`PayloadError` (the response could not be decoded), or the publish's own error
        (:class:`rxmqtt.MessageDroppedError`, :class:`rxmqtt.PublishError`,
        :class:`rxmqtt.ConnectionClosedError`). The request is sent eagerly, once, whether or not
        anyone subscribes; wrap it in ``reactivex.defer`` for a cold, retryable version.
        """
        self._check_live("invoke")
        seconds = self._timeout if timeout is None else check_timeout(timeout)
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
            response_topic=self._response_topic,
            correlation_data=correlation,
            payload_format_indicator=self._serializer.payload_format_indicator,
            user_properties=(*self._stamp(),),
        )
        self._ensure_responses()  # SUBSCRIBE leaves before the request, so no response is missed
        result: Outcome[Resp] = Outcome()
        pending = _Pending(result, seconds, correlation)
        self._pending[correlation] = pending
        pending.timer = scheduler.schedule_relative(
            seconds, lambda _scheduler, _state: self._on_timeout(correlation)
        )
        try:
            outcome = self._conn.publish(
                self._request_topic, payload, self._qos, properties=properties
            )
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
        subscription = self._conn.messages(self._response_topic, self._qos).subscribe(
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
            error = ConnectionClosedError(
                f"the connection closed before the response on {self._response_topic!r} arrived"
            )
        self._fail_all(error)

    def _on_response(self, message: Message) -> None:
        correlation = message.properties.correlation_data
        pending = self._pending.pop(correlation, None) if correlation is not None else None
        if pending is None:
            log.debug("ignoring a response on %r that no invocation waits for", message.topic)
            self._ignored.on_next(message)
            return
        pending.release()
        result = pending.result
        outcome = self._outcome(message)
        if isinstance(outcome, Exception):
            result._fail(outcome)
        else:
            result._resolve(outcome[0])

    def _outcome(self, message: Message) -> tuple[Resp] | Exception:
        """The decoded response, or the error the invocation ends with."""
        user = message.properties.user_properties
        status_text = user_property(user, STATUS_PROPERTY)
        status_message = user_property(user, STATUS_MESSAGE_PROPERTY) or ""
        try:
            status = Status.OK.value if status_text is None else int(status_text)
        except ValueError:
            return CommandExecutionError(
                Status.INTERNAL_ERROR,
                f"the response has an invalid status {status_text!r}",
                request_topic=self._request_topic,
            )
        if not 200 <= status <= 299:
            if not 100 <= status <= 999:
                status_message = f"(invalid status {status}) {status_message}"
                status = Status.INTERNAL_ERROR
            return CommandExecutionError(status, status_message, request_topic=self._request_topic)
        try:
            return (self._response_serializer.deserialize(message.payload),)
        except Exception as exc:
            error = PayloadError(
                f"response to {self._request_topic!r}: "
                f"{type(self._response_serializer).__name__} cannot decode the payload "
                f"({len(message.payload)} bytes): {exc}",
                topic=message.topic,
            )
            error.__cause__ = exc
            return error

    def _on_timeout(self, correlation: bytes) -> None:
        pending = self._pending.pop(correlation, None)
        if pending is None:
            return
        pending.release()
        pending.result._fail(
            CommandTimeoutError(
                pending.timeout, request_topic=self._request_topic, correlation_data=correlation
            )
        )

    def _on_publish_failed(self, correlation: bytes, error: Exception) -> None:
        pending = self._pending.pop(correlation, None)
        if pending is None:
            return
        pending.release()
        if isinstance(error, MessageDroppedError) and error.reason == DropReason.EXPIRED.value:
            # Its expiry (the timeout) ran out in the offline queue: that is a timeout.
            error = CommandTimeoutError(
                pending.timeout, request_topic=self._request_topic, correlation_data=correlation
            )
        pending.result._fail(error)

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
                f"the invoker for {self._request_topic!r} was disposed before the response"
            )
        )
        self._ignored.on_completed()

    def _describe(self) -> str:
        return f" {self._request_topic!r} -> {self._response_topic!r}"
