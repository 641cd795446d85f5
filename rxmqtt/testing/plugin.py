"""pytest plugin (opt-in: ``-p rxmqtt.testing``): real-Mosquitto and FaultProxy fixtures.

Fixtures: ``rxmqtt_mosquitto`` (a started default broker per test), ``rxmqtt_mosquitto_factory``
(brokers with any :class:`~rxmqtt.testing.BrokerConfig`), ``rxmqtt_tls_files`` (session-wide test
certificates), ``rxmqtt_fault_proxy`` (a :class:`~rxmqtt.testing.FaultProxy` in front of
``rxmqtt_mosquitto``) and ``rxmqtt_fault_proxy_factory``. Heavy modules are imported inside the
fixtures so that loading the plugin stays cheap, and a missing ``cryptography`` only skips tests
that ask for ``rxmqtt_tls_files``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from rxmqtt.testing.broker import BrokerConfig, MosquittoBroker
    from rxmqtt.testing.certs import TlsFiles
    from rxmqtt.testing.proxy import FaultProxy


class BrokerFactory(Protocol):
    """``rxmqtt_mosquitto_factory(config=None, **config_fields) -> started MosquittoBroker``."""

    def __call__(
        self, config: BrokerConfig | None = None, /, **config_fields: Any
    ) -> MosquittoBroker: ...


class ProxyFactory(Protocol):
    """``rxmqtt_fault_proxy_factory(broker)`` or ``(host, port)`` -> a started proxy."""

    def __call__(self, target: MosquittoBroker | str, port: int | None = None) -> FaultProxy: ...


def _interrupted_by_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum} (SIGTERM)")


def pytest_configure(config: pytest.Config) -> None:
    """Document the markers used with these fixtures (unless the project already does), and make
    SIGTERM end the run like Ctrl-C, so fixtures tear down and no broker outlives a killed run
    (e.g. by ``timeout`` or a CI runner); SIGTERM's default would exit without any teardown."""
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, _interrupted_by_sigterm)
    declared = config.getini("markers")
    if not any(str(line).split(":", 1)[0].strip() == "broker" for line in declared):
        config.addinivalue_line(
            "markers", "broker: needs a real Mosquitto (started by the rxmqtt.testing harness)"
        )


@pytest.fixture
def rxmqtt_mosquitto() -> Iterator[MosquittoBroker]:
    """A started Mosquitto with the default config (anonymous, no persistence) on 127.0.0.1."""
    from rxmqtt.testing.broker import MosquittoBroker

    broker = MosquittoBroker()
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


@pytest.fixture
def rxmqtt_mosquitto_factory() -> Iterator[BrokerFactory]:
    """Start brokers with custom configs; every one is closed at teardown."""
    from rxmqtt.testing.broker import MosquittoBroker

    brokers: list[MosquittoBroker] = []

    def make(config: BrokerConfig | None = None, /, **config_fields: Any) -> MosquittoBroker:
        broker = MosquittoBroker(config, **config_fields)
        brokers.append(broker)
        return broker.start()

    try:
        yield make
    finally:
        for broker in brokers:
            broker.close()


@pytest.fixture(scope="session")
def rxmqtt_tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """CA, server, client and negative-test certificates (made once per session)."""
    pytest.importorskip("cryptography", reason="rxmqtt_tls_files needs the 'cryptography' package")
    from rxmqtt.testing.certs import make_tls_files

    return make_tls_files(tmp_path_factory.mktemp("rxmqtt-tls"))


@pytest.fixture
def rxmqtt_fault_proxy_factory() -> Iterator[ProxyFactory]:
    """Make started FaultProxies for a broker or any ``(host, port)``; closed at teardown."""
    from rxmqtt.testing.broker import MosquittoBroker
    from rxmqtt.testing.proxy import FaultProxy

    proxies: list[FaultProxy] = []

    def make(target: MosquittoBroker | str, port: int | None = None) -> FaultProxy:
        if isinstance(target, MosquittoBroker):
            scheme = "mqtts" if target.tls else "mqtt"
            proxy = FaultProxy(target.host, target.port, scheme=scheme)
        else:
            if port is None:
                raise TypeError("fault_proxy_factory(host, port): port is required")
            proxy = FaultProxy(target, port)
        proxies.append(proxy)
        return proxy.start()

    try:
        yield make
    finally:
        for proxy in proxies:
            proxy.close()


@pytest.fixture
def rxmqtt_fault_proxy(
    rxmqtt_mosquitto: MosquittoBroker, rxmqtt_fault_proxy_factory: ProxyFactory
) -> FaultProxy:
    """A started FaultProxy in front of the ``rxmqtt_mosquitto`` fixture (connect to ``.port``)."""
    return rxmqtt_fault_proxy_factory(rxmqtt_mosquitto)
