"""What an envoy needs from the connection it is given: a structural type, not a class.

Envoys depend on this Protocol instead of importing :class:`rxmqtt.Connection`, so the binder
layer never pulls in the MQTT engine (paho) and tests can inject a fake.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from reactivex import Observable

from rxmqtt.message import Message, PublishProperties, PublishResult
from rxmqtt.settings import ConnectionSettings
from rxmqtt.settings._protocol import MQTT_5


@runtime_checkable
class MqttConnection(Protocol):
    """The part of :class:`rxmqtt.Connection` the envoys use."""

    @property
    def settings(self) -> ConnectionSettings:
        """The settings; envoys read ``client_id`` from them."""
        ...

    def messages(self, topic_filter: str, qos: int = 0) -> Observable[Message]:
        """A ref-counted subscription to ``topic_filter``."""
        ...

    def publish(
        self,
        topic: str,
        payload: bytes | bytearray | memoryview | str = b"",
        qos: int = 0,
        retain: bool = False,
        *,
        properties: PublishProperties | None = None,
        message_expiry_interval: int | None = None,
    ) -> Observable[PublishResult]:
        """An eager publish whose observable reports the outcome."""
        ...


@runtime_checkable
class GrantReportingConnection(Protocol):
    """A connection that tells when the broker granted a subscription (:class:`rxmqtt.Connection`
    does): envoys' ``start()`` then completes once they are listening, not before."""

    def subscription_granted(self, topic_filter: str) -> Observable[int]:
        """The granted QoS of the live ``messages()`` subscription of ``topic_filter``, once
        the broker granted it; an error when it refused it."""
        ...


def check_connection(value: object, argument: str = "conn") -> MqttConnection:
    """``value`` if it has what an envoy needs, else ``TypeError`` naming ``argument``."""
    if not isinstance(value, MqttConnection):
        raise TypeError(
            f"{argument}: must be an rxmqtt Connection (settings, messages(), publish()), "
            f"got {type(value).__name__}"
        )
    if value.settings.protocol_version != MQTT_5:
        raise ValueError(
            f"{argument}: envoys need MQTT 5 (user properties, response topic, correlation "
            "data); this connection speaks MQTT 3.1.1 (protocol_version=4)"
        )
    return value
