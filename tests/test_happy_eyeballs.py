"""Happy Eyeballs (RFC 8305): a host name with several addresses whose first one never answers
connects through the next one within a stagger delay, not after the whole connect_timeout.

The unanswering address is real: a FaultProxy on ``::1`` refusing silently (its accept queue is
full, so the kernel drops the SYNs and a connect() hangs), on the port the broker has on
127.0.0.1. A name with both addresses comes from the resolver seam (``_sockets.resolve``): the
machine's hosts file is not ours to change, and only the lookup is replaced, never a socket.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from rxmqtt import Connected, ConnectFailed, Connection, ConnectionSettings, ConnectionState
from rxmqtt.engine import _sockets
from rxmqtt.engine._sockets import Address, connect_first
from rxmqtt.testing import FaultProxy, MosquittoBroker
from rxmqtt.testing.recorder import Recorder
from tests._helpers import ipv6_proxy

V4 = socket.AF_INET
V6 = socket.AF_INET6
TCP = (socket.SOCK_STREAM, socket.IPPROTO_TCP)

CONNECT_TIMEOUT = 8.0
"""Long enough that spending it on the dead address is unmistakable."""


def v4(port: int, host: str = "127.0.0.1") -> Address:
    return (V4, *TCP, (host, port))


def v6(port: int, host: str = "::1") -> Address:
    return (V6, *TCP, (host, port, 0, 0))


@pytest.fixture
def dead_v6(rxmqtt_mosquitto: MosquittoBroker) -> Iterator[FaultProxy]:
    """``[::1]:<the broker's port>``, where connections are never answered."""
    proxy = ipv6_proxy(rxmqtt_mosquitto)
    try:
        proxy.refuse(silently=True)
        yield proxy
    finally:
        proxy.close()


async def _hangs(address: Address, seconds: float) -> bool:
    """Whether a plain connect() to ``address`` is still unanswered after ``seconds``."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(address[0], socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, address[3]), seconds)
    except TimeoutError:
        return True
    except OSError:
        return False
    finally:
        sock.close()
    return False


# ---------------------------------------------------------------- the race itself


@pytest.mark.broker
async def test_a_dead_first_address_costs_one_delay_not_the_timeout(
    rxmqtt_mosquitto: MosquittoBroker, dead_v6: FaultProxy
) -> None:
    port = rxmqtt_mosquitto.port
    assert await _hangs(v6(port), 0.5), "the ::1 listener should leave connect() unanswered"
    loop = asyncio.get_running_loop()
    started = loop.time()
    sock = await asyncio.wait_for(connect_first(loop, [v6(port), v4(port)], 0.1), CONNECT_TIMEOUT)
    took = loop.time() - started
    try:
        assert sock.getpeername() == ("127.0.0.1", port)
    finally:
        sock.close()
    assert took < CONNECT_TIMEOUT / 4, f"took {took:.2f}s"


@pytest.mark.broker
async def test_without_staggering_the_dead_address_holds_everything_up(
    rxmqtt_mosquitto: MosquittoBroker, dead_v6: FaultProxy
) -> None:
    """The behaviour Happy Eyeballs replaces: one address after the other."""
    port = rxmqtt_mosquitto.port
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(connect_first(loop, [v6(port), v4(port)], None), 1.0)


async def test_a_refused_address_starts_the_next_at_once() -> None:
    """A failure does not wait for the delay: the next address is tried straight away."""
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))  # bound, never listening: connect() is refused
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        sock = await connect_first(
            loop, [v4(refused.getsockname()[1]), v4(listener.getsockname()[1])], 30.0
        )
        sock.close()
        assert loop.time() - started < 5.0  # not the 30 s delay
    finally:
        refused.close()
        listener.close()


async def test_every_address_failing_names_each() -> None:
    closed = []
    for _ in range(2):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        closed.append(sock)
    loop = asyncio.get_running_loop()
    try:
        with pytest.raises(OSError, match=r"all 2 addresses failed: 127\.0\.0\.1:\d+: .*; "):
            await connect_first(loop, [v4(s.getsockname()[1]) for s in closed], 0.05)
    finally:
        for sock in closed:
            sock.close()


def test_families_are_interleaved_first_answer_first() -> None:
    answers = [v6(1, "::1"), v6(1, "::2"), v6(1, "::3"), v4(1, "10.0.0.1"), v4(1, "10.0.0.2")]
    order = [a[3][0] for a in _sockets._interleaved([*answers, answers[0]])]
    assert order == ["::1", "10.0.0.1", "::2", "10.0.0.2", "::3"]


# ---------------------------------------------------------------- through a Connection


@pytest.mark.broker
async def test_a_connection_to_a_name_with_a_dead_address_connects_on_its_first_attempt(
    rxmqtt_mosquitto: MosquittoBroker, dead_v6: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = rxmqtt_mosquitto.port

    async def both(loop: asyncio.AbstractEventLoop, host: str, port_: int) -> list[Address]:
        assert host == "broker.test"
        return [v6(port_), v4(port_)]  # the dead IPv6 address first, as resolvers prefer it

    monkeypatch.setattr(_sockets, "resolve", both)
    settings = ConnectionSettings(
        host="broker.test", port=port, client_id="he-1", connect_timeout=CONNECT_TIMEOUT
    )
    conn = Connection(settings)
    events = Recorder(conn.lifecycle)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, CONNECT_TIMEOUT)
        took = loop.time() - started
    connected = [e for e in events.items if isinstance(e, Connected)]
    assert [e.endpoint for e in connected] == [f"broker.test:{port}"]
    assert not any(isinstance(e, ConnectFailed) for e in events.items), events.items
    assert took < CONNECT_TIMEOUT / 4, f"took {took:.2f}s"
    assert dead_v6.accepted == 0  # nothing ever got through the dead address
