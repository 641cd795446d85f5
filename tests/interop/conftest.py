"""Interop fixtures: the same tests against Mosquitto and ejabberd (``mod_mqtt``).

``broker`` is parametrised over :data:`BROKERS`; it yields an :class:`InteropBroker`, which hides
what differs in *setting up* the two (ejabberd needs credentials, a FaultProxy is made from host
and port) and carries :class:`Traits`: the behaviour each broker was measured to have. The tests
assert the traits, so a broker upgrade that changes one fails loudly instead of silently; the
table in ``docs/scaling-out.md`` is the same data.

ejabberd tests are skipped, with the reason, when ejabberd is not installed (``apt-get install -y
--no-install-recommends ejabberd``) or cannot run as its ``ejabberd`` user here.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from rxmqtt import Connected, Connection, ConnectionSettings, LifecycleEvent, Message
from rxmqtt.testing import BrokerConfig, FaultProxy, MosquittoBroker
from rxmqtt.testing._ejabberd import (
    INSTALL_HINT,
    EjabberdBroker,
    EjabberdCluster,
    ejabberd_unavailable_reason,
)
from rxmqtt.testing.recorder import Recorder
from tests._helpers import FAST, until_delivered

BROKERS = ["mosquitto", "ejabberd"]


_ids = itertools.count()
_skipped_ejabberd: list[str] = []


@dataclass(frozen=True)
class Traits:
    """Measured behaviour of one broker (asserted by the tests; documented in the docs page)."""

    name: str
    needs_credentials: bool
    """ejabberd 23.01 refuses a CONNECT without a password (CONNACK 0x87), even anonymously."""
    shutdown_disconnect: tuple[str, int]
    """``(DisconnectSource value, reason code)`` a client sees on a graceful broker stop (both
    just close the socket: no DISCONNECT 0x8B, not even ejabberd's ``ejabberdctl stop``)."""
    takeover_disconnect: tuple[str, int]
    """What the first of two connections with one client id sees when the second connects:
    ejabberd sends DISCONNECT 0x8E (fatal: the first stops); Mosquitto 2.0.11 just closes the
    socket, which looks like a network loss, so both reconnect and kick each other in turn."""
    session_survives_graceful_restart: bool
    """Mosquitto with ``persistence true``: yes; ejabberd: sessions are processes, lost."""
    retained_survives_graceful_restart: bool
    shared_subscription_available: bool
    """The CONNACK's Shared Subscription Available (ejabberd 23.01: 0; SUBSCRIBE -> 0x9E)."""
    granted_session_expiry_for_7200: int | None
    """The CONNACK's Session Expiry Interval when a client asks for 7200 s (None: absent, i.e.
    granted as asked). ejabberd caps it at ``mod_mqtt``'s ``session_expiry`` (harness: 3600)."""
    no_subscribers_codes: tuple[int, int, int]
    """The reason code a publish with QoS 0/1/2 gets when nobody subscribes (QoS 0: no ack;
    QoS 1: PUBACK; QoS 2: PUBREC). Mosquitto 2.0 says 0x10 in PUBACK but 0x00 in PUBREC."""
    broker_inflight_window: int | None
    """QoS 1 messages the broker sends to one client before waiting for a PUBACK (measured with
    3 queued; None: all 3 -- Mosquitto's default window is 20, ``max_inflight_messages``).
    ejabberd keeps exactly one in flight per session."""


TRAITS = {
    "mosquitto": Traits(
        name="mosquitto",
        needs_credentials=False,
        shutdown_disconnect=("network", 0x80),
        takeover_disconnect=("network", 0x80),
        session_survives_graceful_restart=True,
        retained_survives_graceful_restart=True,
        shared_subscription_available=True,
        granted_session_expiry_for_7200=None,
        no_subscribers_codes=(0x00, 0x10, 0x00),
        broker_inflight_window=None,
    ),
    "ejabberd": Traits(
        name="ejabberd",
        needs_credentials=True,
        shutdown_disconnect=("network", 0x80),
        takeover_disconnect=("server", 0x8E),
        session_survives_graceful_restart=False,
        retained_survives_graceful_restart=True,
        shared_subscription_available=False,
        granted_session_expiry_for_7200=3600,
        no_subscribers_codes=(0x00, 0x10, 0x10),
        broker_inflight_window=1,
    ),
}


def client_id(name: str) -> str:
    """A unique, lowercase client id (ejabberd maps it to a JID resource)."""
    return f"io-{name}-{next(_ids)}".lower()


class InteropBroker:
    """One broker of either kind, with what the tests need to reach and break it."""

    def __init__(self, kind: str, server: MosquittoBroker | EjabberdBroker) -> None:
        self.kind = kind
        self.server = server
        self.traits = TRAITS[kind]

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def endpoint(self) -> str:
        return f"{self.server.host}:{self.server.port}"

    def credentials(self) -> dict[str, Any]:
        if isinstance(self.server, EjabberdBroker):
            return self.server.credentials()
        return {}

    def settings(self, name: str = "c", **overrides: Any) -> ConnectionSettings:
        """Settings for a client of this broker (a fresh client id unless given)."""
        return _settings(self.host, self.port, self.credentials(), name, overrides)

    def settings_via(
        self, proxy: FaultProxy, name: str = "c", **overrides: Any
    ) -> ConnectionSettings:
        """Settings for a client reaching this broker through ``proxy``."""
        return _settings(proxy.host, proxy.port, self.credentials(), name, overrides)

    def connection(self, name: str = "c", **overrides: Any) -> Connection:
        return Connection(self.settings(name, **overrides), reconnect=FAST)

    def proxy(self) -> FaultProxy:
        return FaultProxy(self.host, self.port).start()

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def kill(self) -> None:
        self.server.kill()

    def restart(self, graceful: bool = True) -> None:
        self.server.restart(graceful=graceful)

    def log_text(self) -> str:
        return self.server.log_text()

    def __repr__(self) -> str:
        return f"<InteropBroker {self.kind} {self.endpoint}>"


def _settings(
    host: str, port: int, credentials: dict[str, Any], name: str, overrides: dict[str, Any]
) -> ConnectionSettings:
    fields: dict[str, Any] = {"client_id": client_id(name), **credentials, **overrides}
    return ConnectionSettings(host=host, port=port, **fields)


def require_ejabberd() -> None:
    """Skip (with the reason) when ejabberd cannot run here."""
    reason = ejabberd_unavailable_reason()
    if reason is not None:
        _skipped_ejabberd.append(reason)
        pytest.skip(f"ejabberd not available: {reason}")


def _make(kind: str, **options: Any) -> MosquittoBroker | EjabberdBroker:
    if kind == "mosquitto":
        return MosquittoBroker(BrokerConfig(persistence=True, **options))
    require_ejabberd()
    return EjabberdBroker(**options)


@pytest.fixture(scope="module", params=BROKERS)
def broker(request: pytest.FixtureRequest) -> Iterator[InteropBroker]:
    """A started broker of each kind, shared by a module's tests that do not stop it
    (Mosquitto with persistence on; ejabberd single node). Tests use unique client ids and
    topics, so they do not see each other."""
    server = _make(request.param)
    try:
        server.start()
        yield InteropBroker(request.param, server)
    finally:
        server.close()


@pytest.fixture(params=BROKERS)
def fresh_broker(request: pytest.FixtureRequest) -> Iterator[InteropBroker]:
    """A broker of each kind for one test only (for tests that stop, kill or restart it)."""
    server = _make(request.param)
    try:
        server.start()
        yield InteropBroker(request.param, server)
    finally:
        server.close()


@pytest.fixture
def proxies() -> Iterator[list[FaultProxy]]:
    """A list to put FaultProxies in; every one is closed at teardown."""
    made: list[FaultProxy] = []
    try:
        yield made
    finally:
        for proxy in made:
            proxy.close()


@pytest.fixture
def cluster() -> Iterator[EjabberdCluster]:
    """A fresh two-node ejabberd cluster (for tests that kill or stop a node)."""
    require_ejabberd()
    with EjabberdCluster(2) as made:
        yield made


@pytest.fixture(scope="module")
def shared_cluster() -> Iterator[EjabberdCluster]:
    """A two-node ejabberd cluster shared by a module's non-destructive tests."""
    require_ejabberd()
    with EjabberdCluster(2) as made:
        yield made


def cluster_settings(
    cluster: EjabberdCluster, first: int = 0, name: str = "c", **overrides: Any
) -> ConnectionSettings:
    """Settings naming every node: node ``first`` first, the others as failover endpoints."""
    node = cluster[first]
    others = [n.endpoint for i, n in enumerate(cluster.nodes) if i != first]
    return _settings(
        node.host, node.port, node.credentials(), name, {"endpoints": others, **overrides}
    )


async def publish_while_offline(pub: Connection, gone: Recorder[Message], prefix: str) -> None:
    """Once the broker published the subscriber's Will (``b"gone"`` on ``gone``), so that its
    session is offline, publish ``0``..``4`` to ``{prefix}/queued``: each matches that session."""
    await gone.wait_for_item(lambda m: m.payload == b"gone", 10)
    for i in range(5):
        result = await pub.publish(f"{prefix}/queued", str(i).encode(), qos=1)
        assert result.reason_code == 0x00, "the offline session still matches"


async def connected_after(
    events: Recorder[LifecycleEvent], before: int, timeout: float, what: str
) -> Connected:
    """The first :class:`Connected` among the lifecycle ``events`` after the first ``before``."""
    await events.wait_until(
        lambda es: any(isinstance(e, Connected) for e in es[before:]), timeout, what
    )
    back = next(e for e in events.items[before:] if isinstance(e, Connected))
    assert isinstance(back, Connected)
    return back


async def assert_queued_once(pub: Connection, got: Recorder[Message], prefix: str) -> None:
    """What :func:`publish_while_offline` queued arrives, in order, once each."""
    await got.wait_until(lambda ms: sum(m.topic == f"{prefix}/queued" for m in ms) >= 5, 10)
    # A marker published after them arrives after any duplicate would (one session, QoS 1).
    await until_delivered(pub, got, f"{prefix}/marker")
    queued = [m.payload for m in got.items if m.topic == f"{prefix}/queued"]
    assert queued == [b"0", b"1", b"2", b"3", b"4"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say once, at the end, why ejabberd tests were skipped and what CI must install."""
    if _skipped_ejabberd:
        install = INSTALL_HINT.replace("install it with: ", "")
        terminalreporter.write_line(
            f"interop: ejabberd tests skipped: {_skipped_ejabberd[0]}. CI must run: {install}",
            yellow=True,
        )
