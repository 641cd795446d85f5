"""Telemetry envoys: a typed stream of samples out of one device, into any number of readers.

:class:`TelemetrySender` publishes serialized values to one topic, stamping each with the
sender's client id and a timestamp (user properties, see :mod:`._protocol`);
:class:`TelemetryReceiver` subscribes to a topic filter and turns what arrives into
:class:`Telemetry` items: the decoded value plus where it came from and when.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, overload

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.subject import Subject

from rxmqtt.message import Message, PublishProperties, PublishResult
from rxmqtt.topics import split_shared, validate_filter, validate_topic

from ..message import check_qos
from ._connection import MqttConnection
from ._envoy import Envoy
from ._errors import PayloadError
from ._protocol import (
    MAX_EXPIRY_SECONDS,
    SOURCE_ID_PROPERTY,
    TIMESTAMP_PROPERTY,
    now_timestamp,
    parse_timestamp,
    user_property,
)
from ._serializers import JSON, Serializer, check_serializer

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
    """The sender's client id (user property ``source-id``), when it said."""
    timestamp: datetime | None
    """When the sender created it (user property ``timestamp``, UTC), when it said."""
    message: Message
    """The raw MQTT message, for its other properties."""


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
    ) -> None:
        """``serializer`` defaults to JSON. ``message_expiry_interval`` (seconds) makes stale
        samples expire in the offline queue and at the broker instead of arriving late."""
        super().__init__(conn)
        self._topic = validate_topic(topic, argument="topic")
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
        """The topic every value is published to."""
        return self._topic

    def send(self, value: T) -> Observable[PublishResult]:
        """Publish ``value`` now; the returned (awaitable) observable emits the
        :class:`~rxmqtt.PublishResult` or errors with why it was not delivered.

        Raises :class:`PayloadError` at once if the serializer cannot encode ``value``.
        """
        self._check_live("send")
        try:
            payload = self._serializer.serialize(value)
        except (TypeError, ValueError) as exc:
            raise PayloadError(
                f"value: {type(self._serializer).__name__} cannot serialize "
                f"{type(value).__name__}: {exc}"
            ) from exc
        properties = PublishProperties(
            message_expiry_interval=self._expiry,
            content_type=self._serializer.content_type,
            payload_format_indicator=self._serializer.payload_format_indicator,
            user_properties=(
                (SOURCE_ID_PROPERTY, self._conn.settings.client_id),
                (TIMESTAMP_PROPERTY, now_timestamp()),
            ),
        )
        return self._conn.publish(
            self._topic, payload, self._qos, self._retain, properties=properties
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
    """Receives telemetry matching ``topic_filter`` (wildcards and ``$share/`` allowed).

    :attr:`telemetry` is shared and ref-counted: the connection subscribes when the first
    observer subscribes and unsubscribes after the last one leaves (or on :meth:`dispose`, which
    completes every observer). It survives reconnects and session loss, and may be subscribed
    before the connection is started.
    """

    @overload
    def __init__(
        self: TelemetryReceiver[Any],
        conn: MqttConnection,
        topic_filter: str,
        deserializer: None = None,
        *,
        qos: int = 1,
    ) -> None: ...

    @overload
    def __init__(
        self,
        conn: MqttConnection,
        topic_filter: str,
        deserializer: Serializer[T],
        *,
        qos: int = 1,
    ) -> None: ...

    def __init__(
        self,
        conn: MqttConnection,
        topic_filter: str,
        deserializer: Serializer[T] | None = None,
        *,
        qos: int = 1,
    ) -> None:
        """``deserializer`` defaults to JSON; ``qos`` is the subscription's maximum QoS."""
        super().__init__(conn)
        self._filter = validate_filter(topic_filter, argument="topic_filter")
        if deserializer is None:
            deserializer = JSON
        check_serializer(deserializer, "deserializer")
        self._deserializer: Serializer[T] = deserializer
        self._qos = check_qos(qos)
        levels = split_shared(self._filter)[1].split("/")
        self._plus_levels = tuple(i for i, level in enumerate(levels) if level == "+")
        self._stop: Subject[None] = Subject()
        self._decode_errors: Subject[PayloadError] = Subject()
        source: Observable[Message] = reactivex.defer(self._source)
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
        """Every decodable sample, with its topic tokens, source and timestamp."""
        return self._telemetry

    @property
    def values(self) -> Observable[T]:
        """Just the decoded values of :attr:`telemetry`."""
        return self._telemetry.pipe(ops.map(_value_of))

    @property
    def decode_errors(self) -> Observable[PayloadError]:
        """Payloads the deserializer refused (skipped on :attr:`telemetry`, reported here while
        :attr:`telemetry` has subscribers). Completes on :meth:`dispose`."""
        return self._decode_errors

    def _source(self, _scheduler: abc.SchedulerBase | None) -> Observable[Message]:
        if self._disposed:
            return reactivex.empty()
        return self._conn.messages(self._filter, self._qos)

    def _decoded(self, source: Observable[Message]) -> Observable[Telemetry[T]]:
        """Decode each message; undecodable ones go to ``decode_errors`` instead."""

        def subscribe(
            observer: abc.ObserverBase[Telemetry[T]], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            def on_next(message: Message) -> None:
                item = self._decode(message)
                if item is not None:
                    observer.on_next(item)

            return source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )

        return reactivex.create(subscribe)

    def _decode(self, message: Message) -> Telemetry[T] | None:
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
        levels = message.topic.split("/")
        tokens = tuple(levels[i] for i in self._plus_levels if i < len(levels))
        user = message.properties.user_properties
        return Telemetry(
            value=value,
            topic=message.topic,
            topic_tokens=tokens,
            source_id=user_property(user, SOURCE_ID_PROPERTY),
            timestamp=parse_timestamp(user_property(user, TIMESTAMP_PROPERTY)),
            message=message,
        )

    def _on_dispose(self) -> None:
        self._stop.on_next(None)
        self._decode_errors.on_completed()

    def _describe(self) -> str:
        return f" {self._filter!r}"


def _value_of(item: Telemetry[T]) -> T:
    return item.value
