"""An attempt is an Observable (``Engine.attempt``): ``Connected`` on CONNACK success, then an
``AttemptEnded`` error when the attempt fails or its link is lost, delivered after the engine has
returned (so the next attempt never starts inside the engine's own stack). Real broker, real
sockets; the FaultProxy cuts the link."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import socket

import pytest
from reactivex import Observable

from rxmqtt import ConnectionSettings, Disconnect
from rxmqtt.broker_limits import BrokerLimits
from rxmqtt.engine import AttemptEnded, Engine
from rxmqtt.engine._phase import Phase
from rxmqtt.lifecycle import Connected
from rxmqtt.message import Message
from rxmqtt.settings import Endpoint
from rxmqtt.testing import MosquittoBroker
from rxmqtt.testing.proxy import FaultProxy

_ids = itertools.count()


class _Handler:
    """Records what the engine reports about the link (the attempt's end comes separately)."""

    def __init__(self) -> None:
        self.connacks: list[bool] = []
        self.losses: list[Disconnect] = []

    def on_connack(self, session_present: bool, limits: BrokerLimits) -> None:
        self.connacks.append(session_present)

    def on_connection_lost(self, disconnect: Disconnect) -> None:
        self.losses.append(disconnect)

    def on_message(self, message: Message) -> None:
        pass

    def on_publish_done(self, mid: int, reason_code: int, reason: str) -> None:
        pass

    def on_publishes_written(self, mids: tuple[int, ...]) -> None:
        pass

    def on_publishes_done(self, done: list[tuple[int, int, str]]) -> None:
        pass

    def on_publish_uncertain(self, mid: int, reason_code: int, reason: str) -> None:
        pass

    def on_suback(self, mid: int, reason_codes: list[tuple[int, str]]) -> None:
        pass

    def on_unsuback(self, mid: int, reason_codes: list[tuple[int, str]]) -> None:
        pass


class _Watch:
    """Subscribes to an attempt and records what it emits, with the engine's phase at each."""

    def __init__(self, engine: Engine, attempt: Observable[Connected]) -> None:
        self.engine = engine
        self.events: list[Connected] = []
        self.up: asyncio.Future[Connected] = asyncio.get_running_loop().create_future()
        self.ended: asyncio.Future[AttemptEnded] = asyncio.get_running_loop().create_future()
        self.phase_at_end: Phase | None = None
        self.inside_engine = False
        self.subscription = attempt.subscribe(self._on_next, self._on_error)

    def _on_next(self, event: Connected) -> None:
        self.events.append(event)
        if not self.up.done():
            self.up.set_result(event)

    def _on_error(self, error: Exception) -> None:
        assert isinstance(error, AttemptEnded)
        self.phase_at_end = self.engine.phase
        self.inside_engine = any(
            frame.frame.f_locals.get("self") is self.engine for frame in inspect.stack()
        )
        self.ended.set_result(error)


def _engine(host: str, port: int, handler: _Handler) -> tuple[Engine, Endpoint]:
    settings = ConnectionSettings(
        host=host, port=port, client_id=f"attempt-{next(_ids)}", connect_timeout=5
    )
    return Engine(settings, asyncio.get_running_loop(), handler), Endpoint(host, port)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_failed_attempt_errors_after_the_engine_is_idle_again() -> None:
    handler = _Handler()
    engine, endpoint = _engine("127.0.0.1", _closed_port(), handler)
    watch = _Watch(engine, engine.attempt(endpoint, clean_start=True))
    ended = await asyncio.wait_for(watch.ended, 10)
    assert not ended.was_connected
    assert "cannot reach" in ended.disconnect.reason
    assert watch.phase_at_end is Phase.IDLE
    assert not watch.inside_engine, "the end arrives once the engine has returned"
    assert (watch.events, handler.connacks, handler.losses) == ([], [], [])


async def test_the_next_attempt_may_start_from_the_end_of_the_last(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    """What the reconnect loop does on failover: subscribe to a new attempt from on_error."""
    handler = _Handler()
    engine, dead = _engine("127.0.0.1", _closed_port(), handler)
    live = Endpoint(rxmqtt_mosquitto.host, rxmqtt_mosquitto.port)
    connected: asyncio.Future[Connected] = asyncio.get_running_loop().create_future()

    def next_attempt(_error: Exception) -> None:
        engine.attempt(live, clean_start=True).subscribe(connected.set_result)

    engine.attempt(dead, clean_start=True).subscribe(on_error=next_attempt)
    event = await asyncio.wait_for(connected, 10)
    assert event.endpoint == str(live)
    assert engine.link_up
    engine.close()


async def test_an_attempt_emits_connected_then_errors_when_its_link_is_lost(
    rxmqtt_fault_proxy: FaultProxy,
) -> None:
    handler = _Handler()
    engine, endpoint = _engine(rxmqtt_fault_proxy.host, rxmqtt_fault_proxy.port, handler)
    watch = _Watch(engine, engine.attempt(endpoint, clean_start=True))
    await asyncio.wait_for(watch.up, 10)
    assert [e.endpoint for e in watch.events] == [str(endpoint)]
    assert handler.connacks == [False], "the handler heard of the CONNACK first"
    assert engine.connections == 1
    rxmqtt_fault_proxy.reset()
    ended = await asyncio.wait_for(watch.ended, 10)
    assert ended.was_connected
    assert handler.losses == [ended.disconnect], "the handler heard of the loss first"
    assert watch.phase_at_end is Phase.IDLE
    assert not watch.inside_engine, "not from inside paho's on_disconnect"


async def test_a_new_subscriber_takes_over_the_attempt_under_way(
    rxmqtt_fault_proxy: FaultProxy,
) -> None:
    """What a new reconnect policy does: watch the live link instead of opening another."""
    handler = _Handler()
    engine, endpoint = _engine(rxmqtt_fault_proxy.host, rxmqtt_fault_proxy.port, handler)
    first = _Watch(engine, engine.attempt(endpoint, clean_start=True))
    await asyncio.wait_for(first.up, 10)
    assert engine.link_up
    first.subscription.dispose()
    second = _Watch(engine, engine.current_attempt())
    assert len(second.events) == 1, "Connected at once: the link is up"
    rxmqtt_fault_proxy.reset()
    ended = await asyncio.wait_for(second.ended, 10)
    assert ended.was_connected
    assert not first.ended.done(), "a disposed subscriber hears nothing"
    assert rxmqtt_fault_proxy.accepted == 1, "no second attempt was opened"


async def test_watching_when_no_attempt_is_under_way_is_an_error() -> None:
    engine, _ = _engine("127.0.0.1", _closed_port(), _Handler())
    errors: list[Exception] = []
    engine.current_attempt().subscribe(on_error=errors.append)
    assert len(errors) == 1
    assert "no attempt under way" in str(errors[0])


@pytest.mark.parametrize("send_disconnect", [True, False])
async def test_close_ends_an_attempt_without_reporting_it(
    rxmqtt_mosquitto: MosquittoBroker, send_disconnect: bool
) -> None:
    handler = _Handler()
    engine, endpoint = _engine(rxmqtt_mosquitto.host, rxmqtt_mosquitto.port, handler)
    watch = _Watch(engine, engine.attempt(endpoint, clean_start=True))
    await asyncio.wait_for(watch.up, 10)
    engine.close(send_disconnect=send_disconnect)
    await engine.wait_closed()
    await asyncio.sleep(0)  # (an end would be delivered on the next loop iteration)
    assert not watch.ended.done()
    assert handler.losses == []
    assert engine.phase is Phase.IDLE
