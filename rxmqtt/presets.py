"""Presets: the seed's five application types, each as one value holding every policy it needs.

Each function returns a frozen :class:`Preset`: the reconnect, publish-retry and offline-queue
policies plus the session-level settings (keep-alive, session expiry, ...) chosen for that kind
of application, with the reasoning in its docstring. Start from the one that matches your
deployment, override what you know better, and apply it::

    from rxmqtt import ConnectionSettings
    from rxmqtt.presets import mpu_gui

    preset = mpu_gui(keep_alive=20)                       # any field, by keyword
    conn = preset.connect(ConnectionSettings.from_env())  # settings fields + policies

    # or, piece by piece:
    conn = Connection(preset.apply(settings), **preset.connection_kwargs())

====================  ===========================================================================
``k8s_single_node``   stable cluster network; the broker restarts on updates: reconnect fast,
                      small queue, readiness follows the connection, never give up
``k8s_multi_node``    nodes drain and vanish without a FIN: short keep-alive, spread-out fast
                      retries, give up after a few minutes so the kubelet restarts the pod
``mpu_headless``      LAN/WAN gateway: long outages, patient backoff, a large FIFO queue (make
                      it persistent with :meth:`Preset.with_store`), day-long sessions
``mpu_gui``           LAN/WAN with a user watching: never give up, never block, a small bounded
                      queue drained newest first, quick dead-link detection
``mcu_headless``      memory-constrained device: a strict byte budget, QoS 0 dropped offline,
                      slow retries to save the radio, small packets and receive window
====================  ===========================================================================

Every preset's persistent session (``clean_start=False`` and a ``session_expiry``) is for a
named client: applied to settings without a client id it keeps their clean, expiring session
(see :meth:`Preset.apply` and the session rule of :class:`~rxmqtt.ConnectionSettings`).

This module is pure: it builds values and never touches the network (only :meth:`Preset.connect`
imports the connection, when it is called).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from ._checks import check_int_between
from .policies import (
    Backoff,
    Drain,
    Jitter,
    Overflow,
    PublishRetry,
    Qos0Offline,
    QueuePolicy,
    ReconnectPolicy,
)
from .settings import ConnectionSettings
from .settings._protocol import MQTT_3_1_1

if TYPE_CHECKING:
    from .connection import Connection
    from .queue import QueueStore

__all__ = [
    "PRESETS",
    "ConnectionKwargs",
    "Preset",
    "PresetOverrides",
    "k8s_multi_node",
    "k8s_single_node",
    "mcu_headless",
    "mpu_gui",
    "mpu_headless",
    "preset",
]

_MAX_UINT16 = 0xFFFF
_MAX_UINT32 = 0xFFFFFFFF


class ConnectionKwargs(TypedDict):
    """The keyword arguments of :class:`~rxmqtt.Connection` a preset provides."""

    reconnect: ReconnectPolicy
    queue: QueuePolicy
    publish_retry: PublishRetry


class PresetOverrides(TypedDict, total=False):
    """Fields a preset function accepts as keyword overrides (any subset)."""

    reconnect: ReconnectPolicy
    queue: QueuePolicy
    publish_retry: PublishRetry
    keep_alive: int
    session_expiry: int
    clean_start: bool
    connect_timeout: float
    receive_maximum: int | None
    maximum_packet_size: int | None


@dataclass(frozen=True)
class Preset:
    """Everything one application type needs: connection policies and session settings.

    Args:
        name: which preset this is (``"mpu_gui"``, ...); informational.
        reconnect: passed to ``Connection(reconnect=...)``.
        queue: passed to ``Connection(queue=...)``.
        publish_retry: passed to ``Connection(publish_retry=...)``.
        keep_alive: seconds; a black-holed link is noticed within about 1.5 times this.
        session_expiry: seconds the broker keeps the session (subscriptions, queued QoS 1/2
            messages) after the connection drops; applies to a named client only.
        clean_start: start without the broker's previous session on the first connect.
        connect_timeout: seconds one connection attempt may take before it counts as failed.
        receive_maximum: QoS 1/2 messages the broker may have in flight towards this client
            (``None`` leaves the settings' value).
        maximum_packet_size: largest packet the broker may send this client, in bytes (``None``
            leaves the settings' value).

    A preset is a value: override a field with ``dataclasses.replace(preset, keep_alive=20)``,
    ``preset.replace(keep_alive=20)`` or the preset function's keywords (``mpu_gui(queue=...)``).
    Bad values raise ``TypeError``/``ValueError`` naming the field, at once.
    """

    name: str
    reconnect: ReconnectPolicy
    queue: QueuePolicy
    publish_retry: PublishRetry
    keep_alive: int
    session_expiry: int
    clean_start: bool = False
    connect_timeout: float = 10.0
    receive_maximum: int | None = None
    maximum_packet_size: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"name: must be a str, got {self.name!r}")
        for field_name, kind in (
            ("reconnect", ReconnectPolicy),
            ("queue", QueuePolicy),
            ("publish_retry", PublishRetry),
        ):
            value = getattr(self, field_name)
            if not isinstance(value, kind):
                raise TypeError(f"{field_name}: must be a {kind.__name__}, got {value!r}")
        check_int_between("keep_alive", self.keep_alive, 0, _MAX_UINT16)
        check_int_between("session_expiry", self.session_expiry, 0, _MAX_UINT32)
        if not isinstance(self.clean_start, bool):
            raise TypeError(f"clean_start: must be a bool, got {self.clean_start!r}")
        timeout: object = self.connect_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise TypeError(f"connect_timeout: must be a number, got {timeout!r}")
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"connect_timeout: must be > 0 seconds, got {timeout!r}")
        if self.receive_maximum is not None:
            check_int_between("receive_maximum", self.receive_maximum, 1, _MAX_UINT16)
        if self.maximum_packet_size is not None:
            check_int_between("maximum_packet_size", self.maximum_packet_size, 1, _MAX_UINT32)

    # ------------------------------------------------------------------ deriving

    def replace(self, **changes: Unpack[PresetOverrides]) -> Preset:
        """A copy with ``changes`` applied (validated); unknown names raise ``TypeError``."""
        unknown = sorted(set(changes) - _OVERRIDABLE)
        if unknown:
            raise TypeError(
                f"{unknown[0]}: not a preset field (expected one of {', '.join(_FIELD_ORDER)})"
            )
        return dataclasses.replace(self, **changes)

    def with_store(self, store: QueueStore) -> Preset:
        """A copy whose offline queue persists in ``store`` (e.g. ``SqliteStore(path)``), so
        messages published while offline survive a process restart.

        A store belongs to one connection at a time: make one preset (and store) per connection.
        """
        return dataclasses.replace(self, queue=dataclasses.replace(self.queue, store=store))

    # ------------------------------------------------------------------ applying

    def apply(self, settings: ConnectionSettings) -> ConnectionSettings:
        """``settings`` with this preset's session fields (``keep_alive``, ``session_expiry``,
        ``clean_start``, ``connect_timeout``, and ``receive_maximum``/``maximum_packet_size``
        when set) replacing theirs; everything else (host, credentials, TLS, Will) is kept.

        The session rule of :class:`~rxmqtt.ConnectionSettings` holds here too: settings that
        ask for no session (``session_expiry=0``, the default without a client id, since no one
        could resume it) keep ``session_expiry`` and ``clean_start``; the preset's persistent
        session is for a named client. On MQTT 3.1.1 (``protocol_version=4``), which has neither
        session expiry nor ``receive_maximum``/``maximum_packet_size``, only ``keep_alive`` and
        ``connect_timeout`` are applied (its session is the settings' ``clean_start``)."""
        if not isinstance(settings, ConnectionSettings):
            raise TypeError(
                f"settings: must be a ConnectionSettings, got {type(settings).__name__}"
            )
        changes: dict[str, Any] = {
            "keep_alive": self.keep_alive,
            "connect_timeout": self.connect_timeout,
        }
        if settings.protocol_version == MQTT_3_1_1:
            return dataclasses.replace(settings, **changes)
        if settings.session_expiry > 0:
            changes["session_expiry"] = self.session_expiry
            changes["clean_start"] = self.clean_start
        if self.receive_maximum is not None:
            changes["receive_maximum"] = self.receive_maximum
        if self.maximum_packet_size is not None:
            changes["maximum_packet_size"] = self.maximum_packet_size
        return dataclasses.replace(settings, **changes)

    def connection_kwargs(self) -> ConnectionKwargs:
        """``reconnect``, ``queue`` and ``publish_retry`` for ``Connection(settings, **...)``.

        This carries only the policies: pass ``preset.apply(settings)`` as the settings too, or
        use :meth:`connect`, so the keep-alive and session settings match the policies.
        """
        return ConnectionKwargs(
            reconnect=self.reconnect, queue=self.queue, publish_retry=self.publish_retry
        )

    def connect(self, settings: ConnectionSettings) -> Connection:
        """A new, not yet started :class:`~rxmqtt.Connection` with this preset applied to
        ``settings`` and its policies; ``start()`` it or use ``async with``."""
        from .connection import Connection  # lazily: presets stay importable without paho

        return Connection(self.apply(settings), **self.connection_kwargs())


_FIELD_ORDER = tuple(f.name for f in dataclasses.fields(Preset) if f.name != "name")
_OVERRIDABLE = frozenset(_FIELD_ORDER)


def _build(defaults: Preset, overrides: PresetOverrides) -> Preset:
    return defaults.replace(**overrides) if overrides else defaults


def k8s_single_node(**overrides: Unpack[PresetOverrides]) -> Preset:
    """A pod in a single-node Kubernetes cluster, next to the broker.

    The cluster network is stable; the fault to expect is the broker restarting (an update, a
    crashed pod). Its socket closes, so the loss is seen at once, and it is back within seconds.

    - Reconnect fast: ``Backoff(0.1, 5.0, FULL)``, so the first retry is within 0.1 s and all
      pods restarting together are spread out; never give up (``max_attempts=None``): a client
      restart cannot bring the broker back, so liveness stays green and readiness
      (:mod:`rxmqtt.health`) tells Kubernetes to stop routing to the pod meanwhile.
      ``reset_after=10``: ten seconds up counts as recovered.
    - Small queue (1,000 messages / 1 MB, drop oldest, FIFO): it only bridges a restart of a few
      seconds; anything longer means the pod is not ready and should not be taking work.
    - Persistent session (``session_expiry=3600``, ``clean_start=False``): with a persistent
      broker the subscriptions and queued QoS 1 messages survive the broker restart.
    - ``keep_alive=15``: cheap inside a cluster, and catches a broker that vanished without
      closing its socket within about 22 s.
    - Acks within 10 s (``PublishRetry(ack_timeout=10)``): on a cluster network a later ack
      means the link is broken; the message is re-sent on the new connection.
    """
    return _build(
        Preset(
            name="k8s_single_node",
            reconnect=ReconnectPolicy(
                backoff=Backoff(initial=0.1, maximum=5.0, jitter=Jitter.FULL),
                max_attempts=None,
                reset_after=10.0,
            ),
            queue=QueuePolicy(
                max_messages=1_000,
                max_bytes=1_000_000,
                overflow=Overflow.DROP_OLDEST,
                drain=Drain.FIFO,
            ),
            publish_retry=PublishRetry(ack_timeout=10.0, max_attempts=3, backoff=Backoff(0.2, 2.0)),
            keep_alive=15,
            session_expiry=3600,
            clean_start=False,
            connect_timeout=5.0,
        ),
        overrides,
    )


def k8s_multi_node(**overrides: Unpack[PresetOverrides]) -> Preset:
    """A pod in a multi-node Kubernetes cluster.

    Nodes are drained, updated and lost; the broker's pod moves to another node and pods are
    restarted as a matter of course. A vanished node sends no FIN, so the dead link is found
    only by keep-alive or a missing ack; the broker that answers next may not have our session.

    - ``keep_alive=10`` and ``ack_timeout=8``: a node that disappeared is noticed within ~15 s.
    - Reconnect fast but spread out: ``Backoff(0.2, 10.0, DECORRELATED)`` so that every pod of
      the drained node does not hit the moved broker in lockstep.
    - Restarts are acceptable, so give up after 40 attempts (a few minutes of trying):
      the connection goes ``FAILED``, ``/livez`` turns 503 and the kubelet restarts the pod,
      which clears anything stuck on the old node. ``reset_after=30``.
    - Small queue (1,000 messages / 1 MB, drop oldest, FIFO): a pod that cannot publish is not
      ready; a big backlog would only be lost with the pod anyway.
    - ``session_expiry=300``: long enough to bridge a broker move, short enough that the
      sessions of pods that were rescheduled elsewhere (new client id) do not pile up.
    """
    return _build(
        Preset(
            name="k8s_multi_node",
            reconnect=ReconnectPolicy(
                backoff=Backoff(initial=0.2, maximum=10.0, jitter=Jitter.DECORRELATED),
                max_attempts=40,
                reset_after=30.0,
            ),
            queue=QueuePolicy(
                max_messages=1_000,
                max_bytes=1_000_000,
                overflow=Overflow.DROP_OLDEST,
                drain=Drain.FIFO,
            ),
            publish_retry=PublishRetry(ack_timeout=8.0, max_attempts=3, backoff=Backoff(0.2, 2.0)),
            keep_alive=10,
            session_expiry=300,
            clean_start=False,
            connect_timeout=5.0,
        ),
        overrides,
    )


def mpu_headless(**overrides: Unpack[PresetOverrides]) -> Preset:
    """A headless gateway on a microprocessor (Linux box, Raspberry Pi) over LAN/WAN.

    The network fails for minutes or hours (Wi-Fi, cellular, a WAN outage); the data collected
    meanwhile matters, in order, and a restart of the process is acceptable but must not lose it.

    - Patient reconnects that never give up: ``Backoff(1.0, 60.0, FULL)``, ``max_attempts=None``,
      ``reset_after=60``: a fleet coming back after an outage does not stampede the broker.
    - A large FIFO queue (100,000 messages / 64 MB, drop oldest when full): history is sent in
      order after the outage. Make it survive restarts with
      ``mpu_headless().with_store(SqliteStore(path))``.
    - ``session_expiry=86400``: the broker keeps subscriptions and QoS 1 messages for a day.
    - ``keep_alive=30``: below common NAT idle timeouts; a dead WAN link is found within ~45 s.
    - ``ack_timeout=20``, 5 retries of transiently refused publishes: slow links are slow.
    """
    return _build(
        Preset(
            name="mpu_headless",
            reconnect=ReconnectPolicy(
                backoff=Backoff(initial=1.0, maximum=60.0, jitter=Jitter.FULL),
                max_attempts=None,
                reset_after=60.0,
            ),
            queue=QueuePolicy(
                max_messages=100_000,
                max_bytes=64_000_000,
                overflow=Overflow.DROP_OLDEST,
                drain=Drain.FIFO,
                qos0_offline=Qos0Offline.QUEUE,
            ),
            publish_retry=PublishRetry(
                ack_timeout=20.0, max_attempts=5, backoff=Backoff(1.0, 30.0)
            ),
            keep_alive=30,
            session_expiry=86_400,
            clean_start=False,
            connect_timeout=15.0,
        ),
        overrides,
    )


def mpu_gui(**overrides: Unpack[PresetOverrides]) -> Preset:
    """A GUI application on a microprocessor (desktop, panel PC) over LAN/WAN.

    The network fails, and a person is watching: the application must never crash, never
    freeze and never need a restart, and what it shows and sends should be the latest state.

    - Never give up (``max_attempts=None``): a GUI must not end ``FAILED``; it shows
      "reconnecting" and recovers by itself. ``Backoff(0.5, 15.0, FULL)`` keeps the wait after
      the network returns short, ``reset_after=20``.
    - ``publish()`` never blocks (it never does in rxmqtt; the queue is bounded so memory is
      too): 1,000 messages / 1 MB, ``DROP_OLDEST`` when full and ``LIFO`` drain, so the newest
      state (the user's last action, the latest reading) reaches the broker first.
    - ``keep_alive=10``, ``ack_timeout=10``: the status shown flips to "reconnecting" within
      ~15 s of a black-holed Wi-Fi, not minutes later.
    - ``session_expiry=3600``: subscriptions survive short outages without a re-subscribe.
    """
    return _build(
        Preset(
            name="mpu_gui",
            reconnect=ReconnectPolicy(
                backoff=Backoff(initial=0.5, maximum=15.0, jitter=Jitter.FULL),
                max_attempts=None,
                reset_after=20.0,
            ),
            queue=QueuePolicy(
                max_messages=1_000,
                max_bytes=1_000_000,
                overflow=Overflow.DROP_OLDEST,
                drain=Drain.LIFO,
                qos0_offline=Qos0Offline.QUEUE,
            ),
            publish_retry=PublishRetry(ack_timeout=10.0, max_attempts=3, backoff=Backoff(0.5, 5.0)),
            keep_alive=10,
            session_expiry=3600,
            clean_start=False,
            connect_timeout=5.0,
        ),
        overrides,
    )


def mcu_headless(**overrides: Unpack[PresetOverrides]) -> Preset:
    """A headless, memory-constrained device (microcontroller class, or a tiny container).

    Memory is the hard limit and the radio costs power; the network comes and goes.

    - A strict byte budget: the offline queue holds at most 32 messages and 16 KiB (topic +
      payload + properties), dropping the oldest when full (the freshest readings matter);
      every drop is reported on ``Connection.dropped``.
    - QoS 0 is dropped while offline (``Qos0Offline.DROP``): it promised nothing, and queueing
      it would spend the budget the QoS 1 messages need.
    - Slow, never-ending retries that save the radio: ``Backoff(1.0, 120.0, DECORRELATED)``,
      ``max_attempts=None``, ``reset_after=60``.
    - ``keep_alive=60``: fewer PINGREQs means less radio time.
    - Bounded inbound too: ``receive_maximum=8`` QoS 1/2 messages in flight and a
      ``maximum_packet_size`` of 4 KiB, so the broker never sends more than the device can hold.
    - ``session_expiry=3600``; ``ack_timeout=30`` with 2 retries of transient refusals.
    """
    return _build(
        Preset(
            name="mcu_headless",
            reconnect=ReconnectPolicy(
                backoff=Backoff(initial=1.0, maximum=120.0, jitter=Jitter.DECORRELATED),
                max_attempts=None,
                reset_after=60.0,
            ),
            queue=QueuePolicy(
                max_messages=32,
                max_bytes=16_384,
                overflow=Overflow.DROP_OLDEST,
                drain=Drain.FIFO,
                qos0_offline=Qos0Offline.DROP,
            ),
            publish_retry=PublishRetry(
                ack_timeout=30.0, max_attempts=2, backoff=Backoff(2.0, 30.0)
            ),
            keep_alive=60,
            session_expiry=3600,
            clean_start=False,
            connect_timeout=15.0,
            receive_maximum=8,
            maximum_packet_size=4096,
        ),
        overrides,
    )


PRESETS = {
    "k8s_single_node": k8s_single_node,
    "k8s_multi_node": k8s_multi_node,
    "mpu_headless": mpu_headless,
    "mpu_gui": mpu_gui,
    "mcu_headless": mcu_headless,
}
"""Every preset function by name (for configuration files and command-line flags)."""


def preset(name: str, **overrides: Unpack[PresetOverrides]) -> Preset:
    """The preset called ``name`` (``"mpu_gui"``; dashes are accepted: ``"mpu-gui"``)."""
    if not isinstance(name, str):
        raise TypeError(f"name: must be a str, got {type(name).__name__}")
    factory = PRESETS.get(name.strip().lower().replace("-", "_"))
    if factory is None:
        raise ValueError(f"name: unknown preset {name!r} (expected one of {', '.join(PRESETS)})")
    return factory(**overrides)
