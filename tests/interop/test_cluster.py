"""A two-node ejabberd cluster on loopback: cross-node routing, failover, and what a session
does when its node dies or only the client's link does.

Measured (ejabberd 23.01, Mnesia cluster joined with ``ejabberdctl join_cluster``):

- A message published on one node reaches subscribers on the other (QoS 0/1/2; PUBACK/PUBREC
  say 0x00 when the only subscriber is remote, 0x10 when there is none anywhere).
- Kill (or stop) the node a client is on: the connection moves to the next endpoint in about one
  backoff step. The session lived on the dead node and is gone: ``Connected(session_present=
  False)`` + ``SessionLost``; the library re-subscribes every live filter and sends what was
  queued, so ``messages()`` streams and pending publishes carry on.
- Lose only the link while the node stays up: the client reconnects to the *other* node with
  Clean Start 0 and ejabberd moves the session there (``session_present=True``), with the
  messages queued for it while it was away.
- A killed node that starts again (same node name and spool) rejoins the cluster by itself.
"""

from __future__ import annotations

import asyncio

import pytest
from reactivex import Observable

from rxmqtt import (
    Backoff,
    Connected,
    Connection,
    ConnectionSettings,
    ConnectionState,
    Disconnected,
    DisconnectSource,
    Jitter,
    LifecycleEvent,
    Message,
    PublishResult,
    ReconnectPolicy,
    SessionLost,
    SubscribeError,
    Will,
)
from rxmqtt.testing import FaultProxy
from rxmqtt.testing._ejabberd import EjabberdBroker, EjabberdCluster
from rxmqtt.testing.recorder import Recorder

from .conftest import (
    FAST,
    assert_queued_once,
    client_id,
    cluster_settings,
    connected_after,
    publish_while_offline,
    until_delivered,
)

pytestmark = pytest.mark.broker


def _on(node: EjabberdBroker, name: str, **overrides: object) -> Connection:
    settings = ConnectionSettings(
        host=node.host,
        port=node.port,
        client_id=client_id(name),
        username=node.username,
        password=node.password,
        **overrides,  # type: ignore[arg-type]
    )
    return Connection(settings, reconnect=FAST)


def test_the_nodes_form_one_cluster(shared_cluster: EjabberdCluster) -> None:
    names = {node.node for node in shared_cluster.nodes}
    for node in shared_cluster.nodes:
        assert set(shared_cluster.list_cluster(node)) == names


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_publishers_on_one_node_reach_subscribers_on_the_other(
    shared_cluster: EjabberdCluster, qos: int
) -> None:
    n0, n1 = shared_cluster.nodes
    async with (
        _on(n0, "pub0") as pub0,
        _on(n1, "pub1") as pub1,
        _on(n0, "sub0") as sub0,
        _on(n1, "sub1") as sub1,
    ):
        got0: Recorder[Message] = Recorder(sub0.messages(f"x{qos}/#", qos=2))
        got1: Recorder[Message] = Recorder(sub1.messages(f"x{qos}/#", qos=2))
        for conn in (pub0, pub1, sub0, sub1):
            await conn.wait_for(ConnectionState.CONNECTED, 10)
        await until_delivered(pub0, got1, f"x{qos}/probe-0-1")
        await until_delivered(pub1, got0, f"x{qos}/probe-1-0")

        r01 = await pub0.publish(f"x{qos}/from0", b"a", qos=qos)
        r10 = await pub1.publish(f"x{qos}/from1", b"b", qos=qos)
        assert r01.reason_code == r10.reason_code == 0x00
        for got in (got0, got1):
            m0 = await got.wait_for_item(lambda m: m.topic == f"x{qos}/from0", 5)
            m1 = await got.wait_for_item(lambda m: m.topic == f"x{qos}/from1", 5)
            assert (m0.payload, m0.qos, m1.payload, m1.qos) == (b"a", qos, b"b", qos)
        nobody = await pub0.publish("nobody/anywhere", b"x", qos=qos)
        assert nobody.reason_code == (0x00 if qos == 0 else 0x10)


@pytest.mark.parametrize("how", ["kill", "stop"])
async def test_failover_when_the_node_dies(cluster: EjabberdCluster, how: str) -> None:
    """The client's node is killed (SIGKILL) or stopped (SIGTERM): the connection continues on
    the other node with a new session, re-subscribes, sends what was published meanwhile, and
    its ``messages()`` stream carries on. The dead node rejoins when started again."""
    n0, n1 = cluster.nodes
    policy = ReconnectPolicy(backoff=Backoff(initial=0.2, maximum=2.0, jitter=Jitter.NONE))
    settings = cluster_settings(cluster, 0, "fo", session_expiry=300, clean_start=False)
    conn = Connection(settings, reconnect=policy)
    events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
    got: Recorder[Message] = Recorder(conn.messages("fo/#", qos=1))
    async with conn, _on(n1, "pub1") as pub1, _on(n1, "watch1") as watcher:
        seen_by_watcher: Recorder[Message] = Recorder(watcher.messages("fo/#", qos=1))
        await conn.wait_for(ConnectionState.CONNECTED, 10)
        await pub1.wait_for(ConnectionState.CONNECTED, 10)
        await watcher.wait_for(ConnectionState.CONNECTED, 10)
        await until_delivered(pub1, got, "fo/before")
        await until_delivered(pub1, seen_by_watcher, "fo/watch")

        loop = asyncio.get_running_loop()
        started = loop.time()
        n0.kill() if how == "kill" else n0.stop()
        lost = await events.wait_for_item(lambda e: isinstance(e, Disconnected), 10)
        assert isinstance(lost, Disconnected)
        assert lost.disconnect.source is DisconnectSource.NETWORK, lost.disconnect
        assert not lost.disconnect.fatal
        # Published while failing over: queued, then sent on the new node.
        pending = conn.publish("fo/during", b"queued", qos=1)

        moved = await events.wait_for_item(
            lambda e: isinstance(e, Connected) and e.endpoint == n1.endpoint, 15, "on n1"
        )
        took = loop.time() - started
        assert isinstance(moved, Connected)
        assert moved.session_present is False, "the session died with its node"
        await events.wait_for_item(lambda e: isinstance(e, SessionLost), 5)
        result = await asyncio.wait_for(_await(pending), 10)
        assert result.reason_code == 0x00  # the watcher on n1 subscribes to it
        await seen_by_watcher.wait_for_item(lambda m: m.topic == "fo/during", 5)

        await until_delivered(pub1, got, "fo/after")  # re-subscribed on n1
        assert got.error is None
        assert not got.completed
        assert took < 5, f"failover took {took:.2f}s"
        print(f"\n[{how}] failover to {n1.endpoint} took {took:.3f}s")

        n0.start()
        await asyncio.to_thread(_wait_members, cluster, 2)
        async with _on(n0, "pub0") as pub0:
            await pub0.wait_for(ConnectionState.CONNECTED, 10)
            await until_delivered(pub0, got, "fo/from-rejoined-n0")


async def _await(result: Observable[PublishResult]) -> PublishResult:
    return await result


def _wait_members(cluster: EjabberdCluster, n: int, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while len(cluster.list_cluster(cluster[1])) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"cluster never had {n} members")
        time.sleep(0.2)


async def test_session_moves_to_the_other_node_when_only_the_link_fails(
    shared_cluster: EjabberdCluster, proxies: list[FaultProxy]
) -> None:
    """Both nodes stay up; the client's links to both are cut for a while (messages are
    published meanwhile), then only the second node is reachable. Reconnecting there with
    Clean Start 0, the client gets its session back from the first node -- session present,
    no re-SUBSCRIBE, the queued messages delivered once each."""
    n0, n1 = shared_cluster.nodes
    px0 = FaultProxy(n0.host, n0.port).start()
    px1 = FaultProxy(n1.host, n1.port).start()
    proxies += [px0, px1]
    gone_topic = f"mv-gone/{client_id('will')}"
    settings = ConnectionSettings(
        host=px0.host,
        port=px0.port,
        endpoints=[f"{px1.host}:{px1.port}"],
        client_id=client_id("mv"),
        session_expiry=300,
        clean_start=False,
        username=n0.username,
        password=n0.password,
        will=Will(gone_topic, b"gone", qos=1),
    )
    conn = Connection(settings, reconnect=FAST)
    events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
    got: Recorder[Message] = Recorder(conn.messages("mv/#", qos=1))
    async with conn, _on(n1, "pub") as pub:
        gone: Recorder[Message] = Recorder(pub.messages(gone_topic, qos=1))
        await conn.wait_for(ConnectionState.CONNECTED, 10)
        await pub.wait_for(ConnectionState.CONNECTED, 10)
        await until_delivered(pub, got, "mv/before")
        await until_delivered(conn, gone, gone_topic)

        px1.refuse()
        px0.refuse()
        px0.reset()
        await conn.wait_for(ConnectionState.RECONNECTING, 5)
        # n0 publishes the Will once it noticed the link is gone: the session is offline there.
        await publish_while_offline(pub, gone, "mv")
        before = len(events.items)
        px1.accept()
        back = await connected_after(events, before, 15, "on n1")
        assert back.endpoint == f"{px1.host}:{px1.port}"
        assert back.session_present is True, "ejabberd moved the session across nodes"
        assert not any(isinstance(e, SessionLost) for e in events.items)
        await assert_queued_once(pub, got, "mv")
        await until_delivered(pub, got, "mv/after")


async def test_shared_subscriptions_are_refused_on_every_node(
    shared_cluster: EjabberdCluster,
) -> None:
    """No load-balanced consumers across ejabberd nodes: each node refuses ``$share/``."""
    for node in shared_cluster.nodes:
        async with _on(node, "share") as conn:
            await conn.wait_for(ConnectionState.CONNECTED, 10)
            limits = conn.broker_limits
            assert limits is not None
            assert limits.shared_subscription_available is False
            disconnects = Recorder(conn.disconnects)
            got: Recorder[Message] = Recorder(conn.messages("$share/g/t/#", qos=1))
            await got.wait_done(10)
            assert isinstance(got.error, SubscribeError)
            assert got.error.reason_code == 0x9E
            assert not disconnects.items, "refused locally: the connection stays up"
