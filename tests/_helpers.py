"""Helpers more than one test module needs (import them; pytest does not collect this file)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import pytest
from reactivex import Observable

from rxmqtt import (
    Backoff,
    Connection,
    ConnectionSettings,
    Jitter,
    Message,
    PublishProperties,
    PublishResult,
    ReconnectPolicy,
)
from rxmqtt.testing import FaultProxy
from rxmqtt.testing.recorder import Recorder


class _Logging(Protocol):
    def log_text(self) -> str: ...


async def until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Poll ``predicate`` on the loop until it holds; ``TimeoutError`` naming ``what`` after
    ``timeout`` seconds (for state with no event to await, such as a log or a byte count)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.01)


async def wait_log(broker: _Logging, text: str, timeout: float = 5.0) -> None:
    """Wait until ``text`` appears in the broker's log (what it received, from whom)."""
    await until(lambda: text in broker.log_text(), f"broker log never said {text!r}", timeout)


@contextlib.contextmanager
def loop_exceptions() -> Iterator[list[dict[str, Any]]]:
    """Record whatever reaches the running loop's exception handler (must stay empty)."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        yield seen
    finally:
        loop.set_exception_handler(previous)


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes from a blocking socket; ``EOFError`` if it closes first."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


FAST = ReconnectPolicy(backoff=Backoff(initial=0.05, maximum=0.2, jitter=Jitter.FULL))
"""Reconnect quickly: tests measure behaviour, not backoff."""

FAST_NO_JITTER = ReconnectPolicy(backoff=Backoff(initial=0.05, maximum=0.2, jitter=Jitter.NONE))
""":data:`FAST` with predictable waits, for tests that script each attempt."""

_ids = itertools.count()


class Endpoint(Protocol):
    """Where a test connects: a broker, or a FaultProxy in front of one."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


def client_id(name: str) -> str:
    """``name`` made unique within the test run."""
    return f"{name}-{next(_ids)}"


def named_settings(port: int, name: str, **overrides: object) -> ConnectionSettings:
    """Settings for a client on ``127.0.0.1:port`` with a unique id from ``name`` (so its session
    persists across reconnects); ``overrides`` replace any field."""
    fields: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "client_id": client_id(name),
        "keep_alive": 30,
        "connect_timeout": 5.0,
    }
    fields.update(overrides)
    return ConnectionSettings(**fields)  # type: ignore[arg-type]


def connection(to: Endpoint, name: str) -> Connection:
    """A connection (not started) to ``to``, with a unique client id and FAST reconnects."""
    settings = ConnectionSettings(host=to.host, port=to.port, client_id=client_id(name))
    return Connection(settings, reconnect=FAST)


def ipv6_proxy(to: Endpoint) -> FaultProxy:
    """A started FaultProxy to ``to`` that listens on ``[::1]`` at ``to``'s own port; skips the
    test where that cannot listen (no IPv6 loopback)."""
    try:
        return FaultProxy(to.host, to.port, "::1", listen_port=to.port).start()
    except OSError as exc:
        pytest.skip(f"cannot listen on [::1]:{to.port} (no IPv6 loopback?): {exc}")


class FakePublisher(ABC):
    """``publish()`` with the real connection's signature, for in-memory fake connections: the
    arguments become one :class:`Message`, handed to :meth:`_publish`."""

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
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        return self._publish(Message(topic, data, qos, retain, properties or PublishProperties()))

    @abstractmethod
    def _publish(self, message: Message) -> Observable[PublishResult]:
        """Deliver or record ``message``; the observable reports the outcome."""


async def until_delivered(
    pub: Connection,
    got: Recorder[Message],
    topic: str,
    *,
    tries: int = 100,
    wait: float = 0.1,
    qos: int = 1,
) -> Message:
    """Publish probes to ``topic`` until ``got`` sees one (a SUBSCRIBE may still be on its way):
    from then on the subscription is live. Returns the probe that arrived."""
    for n in range(tries):
        await pub.publish(topic, f"probe-{n}".encode(), qos=qos)
        try:
            return await got.wait_for_item(lambda m: m.topic == topic, wait)
        except TimeoutError:
            continue
    raise TimeoutError(f"nothing published to {topic!r} was delivered")
