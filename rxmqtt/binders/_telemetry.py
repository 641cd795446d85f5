"""Telemetry envoys (AIO telemetry): typed samples out of one device, into any number of readers.

:class:`TelemetrySender` publishes serialized values to a topic pattern (``{token}`` levels
filled per sender or per call), stamping each with the AIO reserved properties (``__ts``,
``__srcId``, ``__protVer``), application metadata and optionally a CloudEvent;
:class:`TelemetryReceiver` subscribes to the pattern's filter and turns what arrives into
:class:`Telemetry` items, acknowledging each message only after its observers processed it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar, overload

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.subject import Subject

from rxmqtt.message import Message, PublishProperties, PublishResult
from rxmqtt.topics import split_shared, validate_filter, validate_topic

from ..message import check_qos
from ._acks import Delivery, deliveries
from ._cloudevents import CloudEvent
from ._connection import MqttConnection
from ._envoy import Envoy
from ._errors import AioError, PayloadError, configuration_error, mqtt_error
from ._hlc import Timestamp
from ._metadata import application_metadata, outgoing_metadata
from ._protocol import (
    MAX_EXPIRY_SECONDS,
    PROTOCOL_VERSION_PROPERTY,
    SOURCE_ID_PROPERTY,
    SUPPORTED_MAJOR_VERSIONS,
    TIMESTAMP_PROPERTY,
    parse_timestamp,
    parse_version,
    user_property,
)
from ._serializers import JSON, Serializer, check_serializer, content_acceptable
from ._topic_pattern import TopicPattern, check_token_map, is_valid_namespace

log = logging.getLogger("rxmqtt.binders")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Telemetry(Generic[T]):
    """One telemetry sample as a :class:`TelemetryReceiver` delivers it."""

    value: T
    """The decoded payload."""
    topic: str
    """The topic it was published to."""
    topic_tokens: tuple[str, ...]
    """The topic levels matched by each ``+`` of the receiver's filter, in order: for the filter
    ``sensors/+/temp`` and the topic ``sensors/dev-7/temp`` that is ``("dev-7",)``."""
    source_id: str | None
    """The sender's client id (user property ``__srcId``), when it said."""
    timestamp: datetime | None
    """When the sender created it (the wall-clock part of ``__ts``, UTC), when it said."""
    message: Message
    """The raw MQTT message, for its other properties."""
    tokens: Mapping[str, str] = field(default_factory=dict)
    """Every ``{token}`` of the receiver's pattern with its value in this topic (tokens given
    at construction included): ``{"modelId": "...", "ex:room": "kitchen"}``."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """The application's user properties (every one not starting with ``__``)."""
    cloud_event: CloudEvent | None = None
    """The CloudEvent the message carries, when its properties form a valid one."""


class TelemetrySender(Envoy, Generic[T]):
    """Publishes values of type ``T`` to ``topic`` on an injected connection.

    ``send(value)`` is eager, like :meth:`rxmqtt.Connection.publish` (offline, the value waits in
    the connection's queue); :meth:`sink` pipes a whole stream into the topic. Every message
    carries the Content Type and Payload Format Indicator of the serializer and the user
    properties ``source-id`` (this connection's client id) and ``timestamp``.
    """

    @overload
    def __init__(
        self: TelemetrySender[Any],
        conn: MqttConnection,
        topic: str,
        serializer: None = None,
        *,
        qos: int = 1,
        retain: bool = False,
        message_expiry_interval: int | None = None,
        topic_namespace: str | None = None,
        topic_tokens: Mapping[str, str] | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        conn: MqttConnection,
        topic: str,
        serializer: Serializer[T],
        *,
        qos: int = 1,
        retain: bool = False,
        message_expiry_interval: int | None = None,
        topic_namespace: str | None = None,
        topic_tokens: Mapping[str, str] | None = None,
    ) -> None: ...

    def __init__(
        self,
        conn: MqttConnection,
        topic: str,
        serializer: Serializer[T] | None = None,
        *,
        qos: int = 1,
        retain: bool = False,
        message_expiry_interval: int | None = None,
        topic_namespace: str | None = None,
        topic_tokens: Mapping[str, str] | None = None,
    ) -> None:
        """``serializer`` defaults to JSON. ``message_expiry_interval`` (seconds) makes stale
        samples expire in the offline queue and at the broker instead of arriving late.
        ``topic`` may hold ``{token}`` levels, filled from ``topic_tokens`` (and per call;
        ``{senderId}`` defaults to this client id); ``topic_namespace`` is prepended."""
        super().__init__(conn)
        self._tokens = {
            "senderId": self._conn.settings.client_id,
            **check_token_map(topic_tokens, "topic_tokens"),
        }
        self._pattern = TopicPattern.parse(
            topic, namespace=topic_namespace, argument="topic", tokens=self._tokens
        )
        self._topic = self._pattern.pattern
        if not self._pattern.open_tokens:
            validate_topic(self._pattern.topic(argument="topic"), argument="topic")
        if serializer is None:
            serializer = JSON
        check_serializer(serializer, "serializer")
        self._serializer: Serializer[T] = serializer
        self._qos = check_qos(qos)
        if not isinstance(retain, bool):
            raise TypeError(f"retain: must be a bool, got {type(retain).__name__}")
        self._retain = retain
        if message_expiry_interval is not None and (
            isinstance(message_expiry_interval, bool)
            or not isinstance(message_expiry_interval, int)
            or not 1 <= message_expiry_interval <= MAX_EXPIRY_SECONDS
        ):
            raise ValueError(
                f"message_expiry_interval: must be whole seconds in 1..{MAX_EXPIRY_SECONDS} or "
                f"None, got {message_expiry_interval!r}"
            )
        self._expiry = message_expiry_interval
        self._stop: Subject[None] = Subject()

    @property
    def topic(self) -> str:
        """The topic pattern values are published to (namespace included)."""
        return self._topic

    def send(
        self,
        value: T,
        *,
        topic_tokens: Mapping[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
        cloud_event: CloudEvent | None = None,
        message_expiry_interval: int | None = None,
    ) -> Observable[PublishResult]:
        """Publish ``value`` now; the returned (awaitable) observable emits the
        :class:`~rxmqtt.PublishResult` or errors with an ``mqtt error``
        :class:`~rxmqtt.binders.AioError` when it was not delivered.

        ``topic_tokens`` fill the pattern's remaining tokens; ``metadata`` become user
        properties (names starting with ``__`` are reserved); ``cloud_event`` is attached in
        binary mode; ``message_expiry_interval`` overrides the sender's. Raises at once
        :class:`PayloadError` if the serializer cannot encode ``value`` and
        :class:`~rxmqtt.binders.InvalidConfigurationError` for a missing token, a reserved
        metadata name or an invalid CloudEvent.
        """
        self._check_live("send")
        tokens = {**self._tokens, **check_token_map(topic_tokens, "topic_tokens")}
        topic = self._pattern.topic(tokens, argument="topic")
        user = outgoing_metadata(metadata)
        if cloud_event is not None:
            if not isinstance(cloud_event, CloudEvent):
                raise configuration_error("cloudevent", cloud_event, "must be a CloudEvent")
            user.extend(
                cloud_event.to_user_properties(
                    topic=topic, content_type=self._serializer.content_type
                )
            )
        expiry = self._expiry if message_expiry_interval is None else message_expiry_interval
        try:
            payload = self._serializer.serialize(value)
        except (TypeError, ValueError) as exc:
            raise PayloadError(
                f"value: {type(self._serializer).__name__} cannot serialize "
                f"{type(value).__name__}: {exc}"
            ) from exc
        properties = PublishProperties(
            message_expiry_interval=expiry,
            content_type=self._serializer.content_type,
            payload_format_indicator=self._serializer.payload_format_indicator,
            user_properties=(*self._stamp(), *user),
        )
        published = self._conn.publish(
            topic, payload, self._qos, self._retain, properties=properties
        )
        return published.pipe(
            ops.catch(
                lambda error, _: reactivex.throw(mqtt_error(error, f"telemetry to {topic!r}"))
            )
        )

    def sink(
        self, *, skip_failed: bool = False
    ) -> Callable[[Observable[T]], Observable[PublishResult]]:
        """An operator that sends every value of a stream: ``values.pipe(sender.sink())``.

        The result stream emits one :class:`~rxmqtt.PublishResult` per value, in order (values
        are published as they arrive; results wait for their acknowledgements). A failed
        publish errors the result stream, unless ``skip_failed`` -- then it is logged and
        skipped, so a long-running pipe outlives a dropped sample. Disposing the sender stops
        taking values (results still pending are delivered, then it completes).
        """
        if not isinstance(skip_failed, bool):
            raise TypeError(f"skip_failed: must be a bool, got {type(skip_failed).__name__}")

        def send_one(value: T) -> Observable[PublishResult]:
            outcome = self.send(value)
            if not skip_failed:
                return outcome
            return outcome.pipe(ops.catch(self._skip_failure))

        def operator(source: Observable[T]) -> Observable[PublishResult]:
            live: Observable[T] = reactivex.defer(
                lambda _: reactivex.empty() if self._disposed else source
            )
            return live.pipe(ops.take_until(self._stop), ops.concat_map(send_one))

        return operator

    def _skip_failure(
        self, error: Exception, _source: Observable[PublishResult]
    ) -> Observable[PublishResult]:
        log.warning("telemetry to %r not delivered, skipped: %s", self._topic, error)
        return reactivex.empty()

    def _on_dispose(self) -> None:
        self._stop.on_next(None)

    def _describe(self) -> str:
        return f" {self._topic!r}"


class TelemetryReceiver(Envoy, Generic[T]):
    """Receives telemetry on ``topic_filter``: a pattern with ``{token}`` levels (open tokens
    become ``+``), MQTT wildcards or a ``$share/`` filter.

    :attr:`telemetry` is shared and ref-counted: the connection subscribes when the first
    observer subscribes and unsubscribes after the last one leaves (or on :meth:`dispose`, which
    completes every observer). Each message is acknowledged once every observer's ``on_next``
    returned (after processing, in arrival order) on a connection with manual acknowledgement.
    A message is not relayed -- but still acknowledged -- when its ``__protVer`` major version
    is unsupported or unparsable, the deserializer does not accept its content type, or it
    cannot be decoded (reported on :attr:`decode_errors`).
    """

    @overload
    def __init__(
        self: TelemetryReceiver[Any],
        conn: MqttConnection,
        topic_filter: str,
        deserializer: None = None,
        *,
        qos: int = 1,
        topic_namespace: str | None = None,
        topic_tokens: Mapping[str, str] | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        conn: MqttConnection,
        topic_filter: str,
        deserializer: Serializer[T],
        *,
        qos: int = 1,
        topic_namespace: str | None = None,
        topic_tokens: Mapping[str, str] | None = None,
    ) -> None: ...

    def __init__(
        self,
        conn: MqttConnection,
        topic_filter: str,
        deserializer: Serializer[T] | None = None,
        *,
        qos: int = 1,
        topic_namespace: str | None = None,
        topic_tokens: Mapping[str, str] | None = None,
    ) -> None:
        """``deserializer`` defaults to JSON; ``qos`` is the subscription's maximum QoS."""
        super().__init__(conn)
        if not isinstance(topic_filter, str) or not topic_filter:
            raise configuration_error("topicpattern", topic_filter, "must be a non-empty pattern")
        if topic_namespace is not None and (
            not isinstance(topic_namespace, str) or not is_valid_namespace(topic_namespace)
        ):
            raise configuration_error(
                "topicnamespace", topic_namespace, "must be plain topic levels without tokens"
            )
        self._tokens = check_token_map(topic_tokens, "topic_tokens")
        share, plain = split_shared(topic_filter)
        levels: list[str] = []
        self._token_levels: dict[int, str] = {}
        prefix = [] if topic_namespace is None else topic_namespace.split("/")
        for index, level in enumerate([*prefix, *plain.split("/")]):
            if level.startswith("{") and level.endswith("}") and len(level) > 2:
                name = level[1:-1]
                value = self._tokens.get(name)
                self._token_levels[index] = name
                levels.append("+" if value is None else value)
            else:
                levels.append(level)
        joined = "/".join(levels)
        full = joined if share is None else f"$share/{share}/{joined}"
        self._filter = validate_filter(full, argument="topic_filter")
        if deserializer is None:
            deserializer = JSON
        check_serializer(deserializer, "deserializer")
        self._deserializer: Serializer[T] = deserializer
        self._qos = check_qos(qos)
        self._plus_levels = tuple(i for i, level in enumerate(levels) if level == "+")
        self._stop: Subject[None] = Subject()
        self._decode_errors: Subject[PayloadError] = Subject()
        self._ignored: Subject[Message] = Subject()
        self._readers = 0
        """Subscriptions of the connection this receiver holds now (0 or 1: ``telemetry`` is
        shared)."""
        source: Observable[Delivery] = reactivex.defer(self._source)
        self._telemetry: Observable[Telemetry[T]] = source.pipe(
            ops.take_until(self._stop),
            self._decoded,
            ops.share(),
        )

    @property
    def topic_filter(self) -> str:
        """The filter this receiver subscribes to."""
        return self._filter

    @property
    def telemetry(self) -> Observable[Telemetry[T]]:
        """Every relayed sample, with its topic tokens, source, timestamp, metadata and
        CloudEvent. Errors with an ``mqtt error`` :class:`~rxmqtt.binders.AioError` when the
        subscription is refused."""
        return self._telemetry

    def start(self) -> Observable[None]:
        """The (awaitable) outcome of the subscription that subscribing to :attr:`telemetry`
        (or :attr:`values`) began: completes once the broker granted it, so telemetry sent
        from then on arrives; errors with an ``mqtt error`` :class:`~rxmqtt.binders.AioError`
        when it was refused. Subscribe first: the receiver subscribes when it has a reader."""
        self._check_live("start")
        if not self._readers:
            raise RuntimeError(
                "start: subscribe to telemetry (or values) first; the receiver subscribes to "
                f"{self._filter!r} when it has a reader"
            )
        return self._granted(self._filter, self._subscription_name())

    def _subscription_name(self) -> str:
        return f"telemetry subscription to {self._filter!r}"

    @property
    def values(self) -> Observable[T]:
        """Just the decoded values of :attr:`telemetry`."""
        return self._telemetry.pipe(ops.map(_value_of))

    @property
    def decode_errors(self) -> Observable[PayloadError]:
        """Payloads the deserializer refused (skipped on :attr:`telemetry`, reported here while
        :attr:`telemetry` has subscribers). Completes on :meth:`dispose`."""
        return self._decode_errors

    @property
    def ignored(self) -> Observable[Message]:
        """Messages not relayed because of their protocol version or content type (each
        acknowledged). Completes on :meth:`dispose`."""
        return self._ignored

    def _source(self, _scheduler: abc.SchedulerBase | None) -> Observable[Delivery]:
        if self._disposed:
            return reactivex.empty()
        self._readers += 1
        return deliveries(self._conn, self._filter, self._qos).pipe(
            ops.catch(
                lambda error, _: reactivex.throw(mqtt_error(error, self._subscription_name()))
            ),
            ops.finally_action(self._reader_left),
        )

    def _reader_left(self) -> None:
        self._readers -= 1

    def _decoded(self, source: Observable[Delivery]) -> Observable[Telemetry[T]]:
        """Decode each message, relay it, then acknowledge it."""

        def subscribe(
            observer: abc.ObserverBase[Telemetry[T]], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            def on_next(delivery: Delivery) -> None:
                try:
                    item = self._decode(delivery.message)
                    if item is not None:
                        observer.on_next(item)
                finally:
                    delivery.ack()

            return source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )

        return reactivex.create(subscribe)

    def _decode(self, message: Message) -> Telemetry[T] | None:
        properties = message.properties
        user = properties.user_properties
        version = parse_version(user_property(user, PROTOCOL_VERSION_PROPERTY))
        if version is None or version[0] not in SUPPORTED_MAJOR_VERSIONS:
            log.debug("telemetry on %r: unsupported protocol version, not relayed", message.topic)
            self._ignored.on_next(message)
            return None
        content_type = properties.content_type
        indicator = properties.payload_format_indicator
        if not content_acceptable(self._deserializer, content_type, indicator):
            log.debug("telemetry on %r: content type %r refused", message.topic, content_type)
            self._ignored.on_next(message)
            return None
        try:
            value = self._deserializer.deserialize(message.payload)
        except Exception as exc:
            error = PayloadError(
                f"telemetry on {message.topic!r}: {type(self._deserializer).__name__} cannot "
                f"decode the payload ({len(message.payload)} bytes): {exc}",
                topic=message.topic,
            )
            error.__cause__ = exc
            log.debug("%s", error)
            self._decode_errors.on_next(error)
            return None
        stamp = user_property(user, TIMESTAMP_PROPERTY)
        if stamp is not None:
            try:  # causality: whatever this process sends next is stamped later
                self.clock.update(Timestamp.decode(stamp))
            except AioError as error:
                log.debug("telemetry on %r: %s (relayed anyway)", message.topic, error)
        levels = message.topic.split("/")
        tokens = tuple(levels[i] for i in self._plus_levels if i < len(levels))
        named = dict(self._tokens)
        for index, name in self._token_levels.items():
            if index < len(levels):
                named[name] = levels[index]
        user_map = dict(user)
        return Telemetry(
            value=value,
            topic=message.topic,
            topic_tokens=tokens,
            source_id=user_property(user, SOURCE_ID_PROPERTY),
            timestamp=parse_timestamp(stamp),
            message=message,
            tokens=named,
            metadata=application_metadata(message),
            cloud_event=CloudEvent.from_user_properties(user_map, content_type),
        )

    def _on_dispose(self) -> None:
        self._stop.on_next(None)
        self._decode_errors.on_completed()
        self._ignored.on_completed()

    def _describe(self) -> str:
        return f" {self._filter!r}"


def _value_of(item: Telemetry[T]) -> T:
    return item.value
