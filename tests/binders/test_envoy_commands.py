"""Command envoys against a real Mosquitto: invoker and executors on separate connections."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
import reactivex

from rxmqtt import Connected, Connection, ConnectionState, DropReason, PublishProperties
from rxmqtt.binders import (
    CommandExecutionError,
    CommandExecutor,
    CommandInvoker,
    CommandTimeoutError,
    EnvoyDisposedError,
    SkipReason,
)
from rxmqtt.testing import FaultProxy, MosquittoBroker
from rxmqtt.testing.recorder import Recorder
from tests._helpers import connection

pytestmark = pytest.mark.broker

PROBE = "probe"


class Calls:
    """A handler that records the requests it ran (probes are answered, not recorded)."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.probes = 0

    def __call__(self, request: Any) -> Any:
        if request == PROBE:
            self.probes += 1
            return PROBE
        self.requests.append(request)
        if isinstance(request, dict) and "fail" in request:
            if request["fail"] == "status":
                raise CommandExecutionError(404, "no such valve")
            raise ValueError(request["fail"])
        return {"echo": request}


async def until_served(invoker: CommandInvoker[Any, Any], timeout: float = 10.0) -> None:
    """Invoke probes until one is answered: the executor's subscription is live."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            assert await invoker.invoke(PROBE, timeout=0.3) == PROBE
            return
        except CommandTimeoutError:
            continue
    raise TimeoutError("the executor never answered a probe")


async def test_round_trip_with_typed_errors(pair: tuple[Connection, Connection]) -> None:
    inv_conn, exe_conn = pair
    calls = Calls()
    executor = CommandExecutor(exe_conn, "valves/+/set", calls)
    invoker = CommandInvoker(inv_conn, "valves/v1/set")
    await until_served(invoker)
    assert await invoker.invoke({"open": True}) == {"echo": {"open": True}}

    with pytest.raises(CommandExecutionError) as failed:
        await invoker.invoke({"fail": "stuck valve"})
    assert failed.value.status == 500
    assert failed.value.status_message == "ValueError: stuck valve"
    assert failed.value.request_topic == "valves/v1/set"

    with pytest.raises(CommandExecutionError) as missing:
        await invoker.invoke({"fail": "status"})
    assert (missing.value.status, missing.value.status_message) == (404, "no such valve")
    assert executor.executed == calls.probes + 3
    assert invoker.pending == 0


async def test_async_and_observable_handlers(pair: tuple[Connection, Connection]) -> None:
    inv_conn, exe_conn = pair

    async def double(x: int) -> int:
        await asyncio.sleep(0.01)
        return 2 * x

    CommandExecutor(exe_conn, "math/double", lambda x: x if x == PROBE else double(x))
    CommandExecutor(exe_conn, "math/range", lambda n: reactivex.range(0, 1 if n == PROBE else n))
    doubler = CommandInvoker(inv_conn, "math/double")
    ranger = CommandInvoker(inv_conn, "math/range")
    await until_served(doubler)
    assert await doubler.invoke(21) == 42
    assert await ranger.invoke(5, timeout=5) == 4


async def test_timeout_and_late_response_is_ignored(pair: tuple[Connection, Connection]) -> None:
    inv_conn, exe_conn = pair
    release = asyncio.Event()

    async def slow(request: Any) -> Any:
        if request != PROBE:
            await release.wait()
        return request

    nobody = CommandInvoker(inv_conn, "nobody/home")
    with pytest.raises(CommandTimeoutError) as timed_out:
        await nobody.invoke({}, timeout=0.3)
    assert timed_out.value.timeout == 0.3

    CommandExecutor(exe_conn, "slow/op", slow)
    invoker = CommandInvoker(inv_conn, "slow/op")
    ignored = Recorder(invoker.ignored)
    await until_served(invoker)
    late = Recorder(invoker.invoke("late", timeout=0.3))  # expiry 1 s: an answer can follow
    await late.wait_done(5)
    assert isinstance(late.error, CommandTimeoutError)
    release.set()
    response = await ignored.wait_for_item(lambda m: m.payload == b'"late"', 5)
    assert dict(response.properties.user_properties)["__stat"] == "200"
    assert late.items == [], "the late answer did not reach the timed-out invocation"


async def test_request_made_offline_is_sent_after_reconnect_or_times_out(
    rxmqtt_mosquitto: MosquittoBroker, rxmqtt_fault_proxy: FaultProxy
) -> None:
    async with (
        connection(rxmqtt_fault_proxy, "inv") as inv_conn,
        connection(rxmqtt_mosquitto, "exe") as exe_conn,
    ):
        calls = Calls()
        executor = CommandExecutor(exe_conn, "door/lock", calls)
        skipped = Recorder(executor.skipped)
        invoker = CommandInvoker(inv_conn, "door/lock")
        dropped = Recorder(inv_conn.dropped)
        await until_served(invoker)

        # Down for a moment: the request waits in the offline queue and is answered after.
        rxmqtt_fault_proxy.refuse()
        rxmqtt_fault_proxy.reset()
        await inv_conn.wait_for(ConnectionState.RECONNECTING, 5)
        answered = Recorder(invoker.invoke({"n": 1}, timeout=10))
        rxmqtt_fault_proxy.accept()
        await answered.wait_done(10)
        assert answered.items == [{"echo": {"n": 1}}]

        # Down for longer than the timeout: it times out, expires in the queue, never runs.
        rxmqtt_fault_proxy.refuse()
        rxmqtt_fault_proxy.reset()
        await inv_conn.wait_for(ConnectionState.RECONNECTING, 5)
        expired = Recorder(invoker.invoke({"n": 2}, timeout=1.0))
        await expired.wait_done(5)
        assert isinstance(expired.error, CommandTimeoutError)
        rxmqtt_fault_proxy.accept()
        await inv_conn.wait_for(ConnectionState.CONNECTED, 10)
        drop = await dropped.wait_for_item(lambda d: d.message.topic == "door/lock", 5)
        assert drop.reason is DropReason.EXPIRED
        assert await invoker.invoke({"n": 3}) == {"echo": {"n": 3}}
        assert calls.requests == [{"n": 1}, {"n": 3}], "the expired request never ran"
        assert skipped.items == []


async def test_shared_group_splits_100_requests_each_executed_once(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    async with (
        connection(rxmqtt_mosquitto, "inv") as inv_conn,
        connection(rxmqtt_mosquitto, "exe-a") as conn_a,
        connection(rxmqtt_mosquitto, "exe-b") as conn_b,
    ):
        calls_a, calls_b = Calls(), Calls()
        CommandExecutor(conn_a, "jobs/run", calls_a, shared_group="workers")
        CommandExecutor(conn_b, "jobs/run", calls_b, shared_group="workers")
        invoker = CommandInvoker(inv_conn, "jobs/run")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not (calls_a.probes and calls_b.probes):  # both members are subscribed
            assert loop.time() < deadline, "both executors never got a probe"
            await until_served(invoker)
        results = await asyncio.gather(*(invoker.invoke(i, timeout=10) for i in range(100)))
        assert results == [{"echo": i} for i in range(100)]
        ran = Counter(calls_a.requests + calls_b.requests)
        assert sorted(ran) == list(range(100))
        assert set(ran.values()) == {1}, "each request executed exactly once"
        assert calls_a.requests, "the load was split"
        assert calls_b.requests, "the load was split"


async def test_redelivered_request_is_answered_from_the_cache(
    rxmqtt_mosquitto: MosquittoBroker, rxmqtt_fault_proxy: FaultProxy
) -> None:
    """The executor's link dies after it ran a request but before its PUBACK reached the
    broker; the persistent session re-delivers the request after the reconnect, and the
    executor answers it again from its cache instead of running the handler twice."""
    async with (
        connection(rxmqtt_fault_proxy, "exe") as exe_conn,
        connection(rxmqtt_mosquitto, "inv") as inv_conn,
    ):
        cut: list[bool] = []

        def cut_before_puback(request: Any) -> None:
            # Runs before the executor sees the request (same filter, subscribed first), i.e.
            # before paho sends the PUBACK: from here on the link swallows everything.
            if request.payload == b'{"pay":100}' and not cut:
                cut.append(True)
                rxmqtt_fault_proxy.connections[0].blackhole()

        tap = Recorder(exe_conn.messages("billing/charge", qos=1))
        exe_conn.messages("billing/charge", qos=1).subscribe(cut_before_puback)
        calls = Calls()
        executor = CommandExecutor(exe_conn, "billing/charge", calls)
        skipped = Recorder(executor.skipped)
        invoker = CommandInvoker(inv_conn, "billing/charge")
        ignored = Recorder(invoker.ignored)
        await until_served(invoker)

        answer = Recorder(invoker.invoke({"pay": 100}, timeout=10))
        await tap.wait_for_item(lambda m: m.payload == b'{"pay":100}', 5)
        assert calls.requests == [{"pay": 100}], "ran once; its response went into the void"
        events = Recorder(exe_conn.lifecycle)
        rxmqtt_fault_proxy.connections[0].reset()
        back = await events.wait_for_item(lambda e: isinstance(e, Connected), 10)
        assert isinstance(back, Connected)
        assert back.session_present, "the persistent session (and its in-flight request) kept"

        await answer.wait_done(10)
        assert answer.items == [{"echo": {"pay": 100}}]
        redelivered = await tap.wait_until(
            lambda ms: sum(m.payload == b'{"pay":100}' for m in ms) >= 2, 10, "re-delivery"
        )
        assert redelivered[-1].properties.correlation_data is not None
        duplicate = await skipped.wait_for_item(lambda s: s.reason is SkipReason.DUPLICATE, 5)
        assert duplicate.detail == "already executed: answered again"
        assert calls.requests == [{"pay": 100}], "not executed twice"
        # Two answers reach the invoker (paho re-sends the first, the cache sends another):
        # the first completes the invocation, the other is ignored.
        await ignored.wait_for_item(lambda m: m.payload == b'{"echo":{"pay":100}}', 10)


async def test_requests_without_expiry_or_response_topic_are_rejected(
    pair: tuple[Connection, Connection],
) -> None:
    inv_conn, exe_conn = pair
    calls = Calls()
    executor = CommandExecutor(exe_conn, "raw/cmd", calls)
    skipped = Recorder(executor.skipped)
    await until_served(CommandInvoker(inv_conn, "raw/cmd"))
    replies = Recorder(inv_conn.messages("raw/replies", qos=1))
    await inv_conn.publish(
        "raw/cmd",
        b"{}",
        qos=1,
        properties=PublishProperties(
            response_topic="raw/replies", correlation_data=b"k1".ljust(16, b".")
        ),
    )
    await inv_conn.publish("raw/cmd", b"{}", qos=1, message_expiry_interval=5)
    reply = await replies.wait_for_item(lambda m: True, 5)
    props = dict(reply.properties.user_properties)
    assert props["__stat"] == "400"
    assert "expiry" in props["__stMsg"]
    assert reply.properties.correlation_data == b"k1".ljust(16, b".")
    await skipped.wait_for_count(2, 5)
    assert [s.reason for s in skipped.items] == [
        SkipReason.NO_EXPIRY,
        SkipReason.NO_RESPONSE_TOPIC,
    ]
    assert calls.requests == []


async def test_same_correlation_data_published_twice_runs_once(
    pair: tuple[Connection, Connection],
) -> None:
    inv_conn, exe_conn = pair
    calls = Calls()
    CommandExecutor(exe_conn, "dup/cmd", calls)
    await until_served(CommandInvoker(inv_conn, "dup/cmd"))
    replies = Recorder(inv_conn.messages("dup/replies", qos=1))
    twice = PublishProperties(
        response_topic="dup/replies",
        correlation_data=b"same-id".ljust(16, b"."),
        message_expiry_interval=10,
    )
    for _ in range(2):
        await inv_conn.publish("dup/cmd", b'{"charge":5}', qos=1, properties=twice)
    await replies.wait_for_count(2, 5)
    assert [m.payload for m in replies.items] == [b'{"echo":{"charge":5}}'] * 2
    assert {m.properties.correlation_data for m in replies.items} == {b"same-id".ljust(16, b".")}
    assert calls.requests == [{"charge": 5}], "executed once, answered twice"


async def test_lifetimes_created_before_start_dispose_and_session_loss(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    """Envoys made before their connections start; disposing one leaves the connection and the
    others working; a broker crash (session lost) does not stop the rest."""
    inv_conn, exe_conn = connection(rxmqtt_mosquitto, "inv"), connection(rxmqtt_mosquitto, "exe")
    lights, heater = Calls(), Calls()
    light_exec = CommandExecutor(exe_conn, "home/lights", lights)
    heat_exec = CommandExecutor(exe_conn, "home/heater", heater)
    light_inv = CommandInvoker(inv_conn, "home/lights")
    heat_inv = CommandInvoker(inv_conn, "home/heater")
    async with inv_conn, exe_conn:
        await until_served(light_inv)
        await until_served(heat_inv)

        light_exec.dispose()
        with pytest.raises(CommandTimeoutError):
            await light_inv.invoke("on", timeout=0.5)
        assert await heat_inv.invoke(21) == {"echo": 21}
        assert exe_conn.state is ConnectionState.CONNECTED

        async with CommandInvoker(inv_conn, "home/heater") as temporary:
            pending = Recorder(temporary.invoke(PROBE, timeout=5))
        assert isinstance(pending.error, EnvoyDisposedError)
        assert await heat_inv.invoke(22) == {"echo": 22}, "its response subscription lives on"

        rxmqtt_mosquitto.kill()
        await exe_conn.wait_for(ConnectionState.RECONNECTING, 5)
        rxmqtt_mosquitto.start()
        await exe_conn.wait_for(ConnectionState.CONNECTED, 10)
        await inv_conn.wait_for(ConnectionState.CONNECTED, 10)
        await until_served(heat_inv)
        assert await heat_inv.invoke(23) == {"echo": 23}
        assert heater.requests == [21, 22, 23]
        assert lights.requests == []
        assert heat_exec.running == 0
    assert inv_conn.state is ConnectionState.CLOSED
