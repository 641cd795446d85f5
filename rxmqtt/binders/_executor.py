"""``CommandExecutor``: AIO commands from the serving side.

The executor subscribes to a request topic pattern (optionally as one member of a
``$share/{group}/`` shared subscription, so several executors balance the load), checks each
request as AIO does (:mod:`._request_checks`), runs the handler (:mod:`._handler_outcome`) and
publishes the outcome to the request's Response Topic with its Correlation Data and the AIO
status properties (``__stat``, ``__stMsg``, ``__apErr``, ...). The request is acknowledged once
its response was acknowledged by the broker, so a lost connection redelivers it.

Every request must carry a Message Expiry Interval: it is the request's deadline. A request is
answered only while its deadline has not passed; one still waiting for a free handler slot at
its deadline is dropped without running; a handler still running at the deadline is cancelled,
or answered 408 when ``execution_timeout`` came first. A request re-delivered after a reconnect
(QoS 1 is "at least once") is recognised by its correlation data and answered from a bounded,
expiring cache instead of running the handler again.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar, overload

from reactivex import Observable, abc
from reactivex.subject import Subject

from rxmqtt.message import Message, PublishProperties
from rxmqtt.topics import validate_filter

from ..message import check_qos
from ._acks import Delivery, deliveries
from ._connection import MqttConnection
from ._dedup import DedupCache
from ._envoy import Envoy, scheduler_seconds
from ._errors import (
    AioError,
    CommandExecutionError,
    ErrorKind,
    InvalidConfigurationError,
    configuration_error,
    mqtt_error,
)
from ._executor_jobs import RUNNING, CachedResponse, Job, Running, SkippedRequest, SkipReason
from ._handler_outcome import follow_outcome
from ._metadata import CommandRequest, CommandResult, application_metadata
from ._protocol import (
    APPLICATION_ERROR_PROPERTY,
    PROPERTY_NAME_PROPERTY,
    PROPERTY_VALUE_PROPERTY,
    SOURCE_ID_PROPERTY,
    STATUS_MESSAGE_PROPERTY,
    STATUS_PROPERTY,
    Status,
    check_timeout,
    expiry_for,
    iso_duration,
    user_property,
)
from ._request_checks import check_request
from ._serializers import JSON, Serializer, check_serializer
from ._topic_pattern import TopicPattern, check_token_map, is_valid_namespace

log = logging.getLogger("rxmqtt.binders")

Req = TypeVar("Req")
Resp = TypeVar("Resp")

DEFAULT_DEDUP_TTL = 60.0
DEFAULT_DEDUP_SIZE = 10_000


class CommandExecutor(Envoy, Generic[Req, Resp]):
    """Serves the command at ``request_topic`` (a topic filter) with ``handler``.

    ``handler(request)`` may return the response, an awaitable of it (``async def``), or an
    observable whose last value is it. Raising :class:`CommandExecutionError` answers with that
    status; any other exception answers 500. Sync handlers run on the connection's loop thread:
    hand blocking work to ``asyncio.to_thread``.

    - ``serializer`` decodes requests; ``response_serializer`` encodes responses (default: the
      same serializer; both default to JSON).
    - ``shared_group`` subscribes to ``$share/{shared_group}/{request_topic}`` so the broker
      gives each request to one of the group's executors.
    - ``max_concurrency`` bounds how many handlers run at once; further requests wait (and are
      dropped if their expiry passes meanwhile). ``None``: no bound.
    - ``dedup_ttl`` / ``dedup_size``: how long (at least; a request's own expiry extends it) and
      how many executed requests are remembered to answer re-deliveries from the cache.
    """

    @overload
    def __init__(
        self,
        conn: MqttConnection,
        request_topic: str,
        handler: Callable[[Req], Observable[Resp]],
        *,
        serializer: Serializer[Req] | None = None,
        response_serializer: Serializer[Resp] | None = None,
        shared_group: str | None = None,
        qos: int = 1,
        max_concurrency: int | None = None,
        dedup_ttl: float = DEFAULT_DEDUP_TTL,
        dedup_size: int = DEFAULT_DEDUP_SIZE,
        scheduler: abc.SchedulerBase | None = None,
        command_name: str = "command",
        executor_id: str | None = None,
        topic_namespace: str | None = None,
        topic_tokens: Mapping[str, str] | None = None,
        execution_timeout: float | None = None,
        with_context: bool = False,
    ) -> None: ...

    @overload
    def __init__(
        self,
        conn: MqttConnection,
        request_topic: str,
        handler: Callable[[Req], Awaitable[Resp]],
        *,
        serializer: Serializer[Req] | None = None,
        response_serializer: Serializer[Resp] | None = None,
        shared_group: str | None = None,
        qos: int = 1,
        max_concurrency: int | None = None,
        dedup_ttl: float = DEFAULT_DEDUP_TTL,
        dedup_size: int = DEFAULT_DEDUP_SIZE,
        scheduler: abc.SchedulerBase | None = None,
        command_name: str = "command",
        executor_id: str | None = None,
        topic_namespace: str | None = None,
        topic_tokens: Mapping[str, str] | None = None,
        execution_timeout: float | None = None,
        with_context: bool = False,
    ) -> None: ...

    @overload
    def __init__(
        self,
        conn: MqttConnection,
        request_topic: str,
        handler: Callable[[Req], Resp],
        *,
        serializer: Serializer[Req] | None = None,
        response_serializer: Serializer[Resp] | None = None,
        shared_group: str | None = None,
        qos: int = 1,
        max_concurrency: int | None = None,
        dedup_ttl: float = DEFAULT_DEDUP_TTL,
        dedup_size: int = DEFAULT_DEDUP_SIZE,
        scheduler: abc.SchedulerBase | None = None,
        command_name: str = "command",
        executor_id: str | None = None,
        topic_namespace: str | None = None,
        topic_tokens: Mapping[str, str] | None = None,
        execution_timeout: float | None = None,
        with_context: bool = False,
    ) -> None: ...

    def __init__(
        self,
        conn: MqttConnection,
        request_topic: str,
        handler: Callable[[Req], Any],
        *,
        serializer: Serializer[Any] | None = None,
        response_serializer: Serializer[Any] | None = None,
        shared_group: str | None = None,
        qos: int = 1,
        max_concurrency: int | None = None,
        dedup_ttl: float = DEFAULT_DEDUP_TTL,
        dedup_size: int = DEFAULT_DEDUP_SIZE,
        scheduler: abc.SchedulerBase | None = None,
        command_name: str = "command",
        executor_id: str | None = None,
        topic_namespace: str | None = None,
        topic_tokens: Mapping[str, str] | None = None,
        execution_timeout: float | None = None,
        with_context: bool = False,
    ) -> None:
        super().__init__(conn, scheduler=scheduler)
        if isinstance(request_topic, str) and request_topic.startswith("$share/"):
            raise ValueError(
                "request_topic: give the plain filter and shared_group=... instead of a "
                f"'$share/' filter, got {request_topic!r}"
            )
        if not isinstance(command_name, str) or not command_name:
            raise configuration_error("commandname", command_name, "must be a non-empty str")
        self._command_name = command_name
        tokens = check_token_map(topic_tokens, "topic_tokens")
        if executor_id is not None:
            tokens["executorId"] = executor_id
        self._tokens = tokens
        self._pattern = TopicPattern.parse(
            request_topic,
            namespace=topic_namespace,
            argument="request_topic",
            name="requesttopicpattern",
            tokens=tokens,
            wildcards=True,
        )
        self._request_topic = validate_filter(self._pattern.filter(), argument="request_topic")
        self._execution_timeout = (
            None if execution_timeout is None else _check_execution_timeout(execution_timeout)
        )
        if not isinstance(with_context, bool):
            raise TypeError(f"with_context: must be a bool, got {type(with_context).__name__}")
        self._with_context = with_context
        if not callable(handler):
            raise TypeError(f"handler: must be callable, got {type(handler).__name__}")
        self._handler = handler
        if serializer is None:
            serializer = JSON
        check_serializer(serializer, "serializer")
        if response_serializer is None:
            response_serializer = serializer
        check_serializer(response_serializer, "response_serializer")
        self._serializer: Serializer[Req] = serializer
        self._response_serializer: Serializer[Resp] = response_serializer
        if shared_group is not None:
            if not isinstance(shared_group, str):
                raise TypeError(f"shared_group: must be a str, got {type(shared_group).__name__}")
            if not shared_group or any(c in shared_group for c in "/+#"):
                raise ValueError(
                    f"shared_group: must be non-empty without '/', '+' or '#', got {shared_group!r}"
                )
            subscription_filter = f"$share/{shared_group}/{self._request_topic}"
        else:
            subscription_filter = self._request_topic
        self._filter = validate_filter(subscription_filter, argument="shared_group")
        self._qos = check_qos(qos)
        if max_concurrency is not None and (
            isinstance(max_concurrency, bool)
            or not isinstance(max_concurrency, int)
            or max_concurrency < 1
        ):
            raise ValueError(
                f"max_concurrency: must be an int >= 1 or None, got {max_concurrency!r}"
            )
        self._max_concurrency = max_concurrency
        self._dedup_ttl = check_timeout(dedup_ttl, "dedup_ttl")
        if isinstance(dedup_size, bool) or not isinstance(dedup_size, int) or dedup_size < 1:
            raise ValueError(f"dedup_size: must be an int >= 1, got {dedup_size!r}")
        self._cache: DedupCache[tuple[str, bytes], CachedResponse | Running] = DedupCache(
            dedup_size, self._dedup_ttl, self._now
        )
        self._waiting: deque[Job] = deque()
        self._jobs: set[Job] = set()
        self._running = 0
        self._executed = 0
        self._skipped: Subject[SkippedRequest] = Subject()
        self._refused: AioError | None = None
        self._subscription: abc.DisposableBase | None = deliveries(
            self._conn, self._filter, self._qos
        ).subscribe(self._on_request, self._on_subscription_error)

    def start(self) -> Observable[None]:
        """The (awaitable) outcome of subscribing, which the constructor began: completes once
        the broker granted the subscription (so requests sent from then on are served), or
        errors with an ``mqtt error`` :class:`AioError` when it was refused."""
        return self._granted(self._filter, self._subscription_name(), self._refused)

    @property
    def request_topic(self) -> str:
        """The request topic filter served (without the ``$share/`` prefix)."""
        return self._request_topic

    @property
    def subscription_filter(self) -> str:
        """What the executor subscribes to (with ``$share/{group}/`` when shared)."""
        return self._filter

    @property
    def executed(self) -> int:
        """How many requests were handed to the handler."""
        return self._executed

    @property
    def running(self) -> int:
        """Handlers running now."""
        return self._running

    @property
    def skipped(self) -> Observable[SkippedRequest]:
        """Requests that did not run the handler, with why. Completes on dispose."""
        return self._skipped

    # ------------------------------------------------------------------ requests

    def _now(self) -> float:
        return scheduler_seconds(self._timer_scheduler("executor"))

    def _subscription_name(self) -> str:
        return f"executor subscription {self._filter!r}"

    def _subscription_failed(self, error: Exception, what: str) -> AioError:
        failure = mqtt_error(error, what)
        failure.command_name = self._command_name
        return failure

    def _on_subscription_error(self, error: Exception) -> None:
        self._refused = self._subscription_failed(error, self._subscription_name())
        log.error("executor for %r lost its subscription: %s", self._filter, error)

    def _on_request(self, delivery: Delivery) -> None:
        if self._disposed:
            delivery.ack()
            return
        try:
            self._accept(delivery.message, delivery.ack)
        except Exception:  # never let a bug here reach the connection's dispatch
            delivery.ack()
            log.exception(
                "executor for %r failed on a request to %r", self._filter, delivery.message.topic
            )

    def _accept(self, message: Message, ack: Callable[[], None]) -> None:
        properties = message.properties
        response_topic = properties.response_topic
        if response_topic is None:
            self._skip(SkipReason.NO_RESPONSE_TOPIC, message, "the request has no response topic")
            ack()
            return
        if not is_valid_namespace(response_topic):  # plain levels: no wildcard, no empty level
            detail = f"the response topic {response_topic!r} is not a valid topic"
            self._skip(SkipReason.NO_RESPONSE_TOPIC, message, detail)
            ack()
            return
        now = self._now()
        expiry = properties.message_expiry_interval
        rejection = check_request(message, self._serializer, self.clock)
        if rejection is not None:
            # Without an expiry the invoker's patience is unknown: answer for a while.
            deadline = now + (self._dedup_ttl if expiry is None else expiry)
            reason = SkipReason.NO_EXPIRY if expiry is None else SkipReason.BAD_REQUEST
            self._skip(reason, message, rejection.detail)
            self._publish(
                self._response(
                    message, rejection.status, rejection.detail, b"", deadline, rejection.properties
                ),
                ack,
            )
            return
        assert expiry is not None
        correlation = properties.correlation_data
        key = (response_topic, correlation) if correlation is not None else None
        if key is not None:
            cached = self._cache.get(key)
            if isinstance(cached, CachedResponse):
                self._skip(SkipReason.DUPLICATE, message, "already executed: answered again")
                self._publish(cached, ack)
                return
            if cached is not None:
                self._skip(SkipReason.DUPLICATE, message, "in progress: one answer follows")
                ack()
                return
            self._cache.put(key, RUNNING, ttl=max(self._dedup_ttl, float(expiry)))
        job = Job(message, response_topic, key, deadline=now + expiry, ack=ack)
        limit = float(expiry)
        if self._execution_timeout is not None and self._execution_timeout < limit:
            limit = self._execution_timeout
            job.execution_deadline = now + limit
        self._jobs.add(job)
        job.timer = self._timer_scheduler("executor").schedule_relative(
            limit, lambda _scheduler, _state: self._on_deadline(job)
        )
        if self._max_concurrency is not None and self._running >= self._max_concurrency:
            self._waiting.append(job)
        else:
            self._start(job)

    def _start(self, job: Job) -> None:
        job.started = True
        self._running += 1
        try:
            request = self._serializer.deserialize(job.message.payload)
        except Exception as exc:
            detail = f"the request cannot be decoded: {exc}"
            self._skip(SkipReason.BAD_REQUEST, job.message, detail)
            self._complete(job, Status.BAD_REQUEST, detail, b"")
            return
        self._executed += 1
        argument: Any = request
        if self._with_context:
            argument = CommandRequest(
                value=request,
                metadata=application_metadata(job.message),
                tokens=self._pattern.tokens_of(job.message.topic, self._tokens) or {},
                invoker_id=user_property(
                    job.message.properties.user_properties, SOURCE_ID_PROPERTY
                ),
                message=job.message,
            )
        job.work = follow_outcome(
            lambda: self._handler(argument),
            on_value=lambda value: self._succeed(job, value),
            on_error=lambda error: self._fail(job, error),
            scheduler=self._timer_scheduler("executor"),
        )
        if job.done and job.work is not None:
            job.work.dispose()

    def _succeed(self, job: Job, value: Any) -> None:
        if job.done:
            return
        metadata: tuple[tuple[str, str], ...] = ()
        if isinstance(value, CommandResult):
            metadata = tuple(value.metadata.items())
            value = value.value
        try:
            payload = self._response_serializer.serialize(value)
        except Exception as exc:
            self._fail(job, TypeError(f"the handler's response cannot be serialized: {exc}"))
            return
        self._complete(job, Status.OK, "OK", payload, metadata)

    def _fail(self, job: Job, error: Exception) -> None:
        if job.done:
            return
        if isinstance(error, CommandExecutionError):
            status, detail = error.status, error.status_message
        else:
            log.warning("command handler for %r failed", job.message.topic, exc_info=error)
            status, detail = Status.INTERNAL_ERROR, f"{type(error).__name__}: {error}"
        # The application, not the executor, reported it: AIO's "execution error".
        self._complete(job, status, detail, b"", ((APPLICATION_ERROR_PROPERTY, "true"),))

    def _complete(
        self,
        job: Job,
        status: int,
        detail: str,
        payload: bytes,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Answer ``job`` (once), remember the answer for re-deliveries, start the next."""
        if job.done:
            return
        self._finish(job)
        response = self._response(job.message, status, detail, payload, job.deadline, extra)
        if job.key is not None:
            self._cache.update(job.key, response)
        self._publish(response, job.ack)
        self._start_waiting()

    def _finish(self, job: Job) -> None:
        job.done = True
        self._jobs.discard(job)
        if job.timer is not None:
            job.timer.dispose()
        if job.started:
            self._running -= 1

    def _on_deadline(self, job: Job) -> None:
        """The request's expiry passed before it was answered: nobody waits any more. Or the
        execution timeout passed first: cancel the handler and answer 408."""
        if job.done:
            return
        if job.execution_deadline is not None:
            if job.started and job.work is not None:
                job.work.dispose()
            if not job.started:
                self._waiting.remove(job)
                job.started = True
                self._running += 1
            assert self._execution_timeout is not None
            self._complete(
                job,
                Status.REQUEST_TIMEOUT,
                f"the execution timeout ({self._execution_timeout:g}s) passed",
                b"",
                (
                    (PROPERTY_NAME_PROPERTY, "ExecutionTimeout"),
                    (PROPERTY_VALUE_PROPERTY, iso_duration(self._execution_timeout)),
                ),
            )
            return
        job.ack()
        started = job.started
        self._finish(job)
        if job.key is not None:
            self._cache.discard(job.key)
        if not started:
            self._waiting.remove(job)
            self._skip(SkipReason.EXPIRED, job.message, "expired while waiting to run")
            return
        if job.work is not None:
            job.work.dispose()
        log.warning(
            "command handler for %r still running at the request's expiry: cancelled, no answer",
            job.message.topic,
        )
        self._start_waiting()

    def _start_waiting(self) -> None:
        limit = self._max_concurrency
        while self._waiting and (limit is None or self._running < limit) and not self._disposed:
            job = self._waiting.popleft()
            if job.done:
                continue
            if self._now() >= job.deadline:
                self._finish(job)
                job.ack()
                if job.key is not None:
                    self._cache.discard(job.key)
                self._skip(SkipReason.EXPIRED, job.message, "expired while waiting to run")
                continue
            self._start(job)

    # ------------------------------------------------------------------ responses

    def _response(
        self,
        request: Message,
        status: int,
        detail: str,
        payload: bytes,
        deadline: float,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> CachedResponse:
        properties = PublishProperties(
            correlation_data=request.properties.correlation_data,
            content_type=self._response_serializer.content_type if payload else None,
            payload_format_indicator=(
                self._response_serializer.payload_format_indicator if payload else None
            ),
            user_properties=(
                (STATUS_PROPERTY, str(int(status))),
                (STATUS_MESSAGE_PROPERTY, detail),
                *extra,
                *self._stamp(),
            ),
        )
        topic = request.properties.response_topic
        assert topic is not None
        return CachedResponse(topic, payload, properties, deadline)

    def _publish(self, response: CachedResponse, ack: Callable[[], None]) -> None:
        """Send ``response`` with the time its request has left as its expiry (none left: the
        invoker gave up, so nothing is sent), then ``ack`` the request once the response's
        PUBACK (or failure) is in: a request is acknowledged only once it was answered."""
        remaining = response.deadline - self._now()
        if remaining <= 0:
            log.debug("too late to answer on %r: the request expired", response.topic)
            ack()
            return
        properties = dataclasses.replace(
            response.properties, message_expiry_interval=expiry_for(remaining)
        )
        try:
            outcome = self._conn.publish(
                response.topic, response.payload, self._qos, properties=properties
            )
        except (TypeError, ValueError) as exc:  # e.g. over the broker's maximum packet size
            log.error("cannot send the response on %r: %s", response.topic, exc)
            ack()
            return

        def failed(error: Exception) -> None:
            log.warning("response not delivered: %s", error)
            ack()

        outcome.subscribe(on_error=failed, on_completed=ack)

    def _skip(self, reason: SkipReason, message: Message, detail: str) -> None:
        log.debug("request on %r not executed (%s): %s", message.topic, reason.value, detail)
        self._skipped.on_next(SkippedRequest(reason, message, detail))

    def _on_dispose(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.dispose()
        self._waiting.clear()
        for job in list(self._jobs):
            work = job.work
            self._finish(job)
            if work is not None:
                work.dispose()
        self._cache.clear()
        self._skipped.on_completed()

    def _describe(self) -> str:
        return f" {self._filter!r}"


def _check_execution_timeout(value: object) -> float:
    """An execution timeout, or ``invalid configuration`` naming ``executiontimeout``."""
    try:
        return check_timeout(value, "execution_timeout")
    except (TypeError, ValueError) as exc:
        raise InvalidConfigurationError(
            ErrorKind.INVALID_CONFIGURATION,
            str(exc),
            is_shallow=True,
            property_name="executiontimeout",
            property_value=value,
        ) from None
