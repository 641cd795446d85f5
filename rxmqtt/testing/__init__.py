"""rxmqtt test harness: a real Mosquitto on a free loopback port, and FaultProxy.

Used by rxmqtt's own tests and by applications. The pytest fixtures are opt-in: load them with
``pytest_plugins = ["rxmqtt.testing"]`` in a top-level ``conftest.py``, or with
``pytest -p rxmqtt.testing``.
They are ``rxmqtt_mosquitto``, ``rxmqtt_mosquitto_factory``, ``rxmqtt_tls_files``,
``rxmqtt_fault_proxy`` and ``rxmqtt_fault_proxy_factory``, prefixed so that they never clash with
another plugin's. This package never imports paho.

``rxmqtt.testing._ejabberd`` (an ejabberd broker and cluster for rxmqtt's own interop tests) is
private: it is not part of the supported API and may change or go away in any release.
"""

from rxmqtt.testing.broker import (
    BrokerConfig,
    BrokerStartError,
    MosquittoBroker,
    MosquittoNotFoundError,
    find_mosquitto,
    free_port,
)
from rxmqtt.testing.certs import TlsFiles, make_tls_files
from rxmqtt.testing.proxy import FaultProxy, ProxiedConnection
from rxmqtt.testing.recorder import Recorder

pytest_plugins = ["rxmqtt.testing.plugin"]
"""Loading this package as a pytest plugin loads the fixtures (pytest only reads this name)."""

__all__ = [
    "BrokerConfig",
    "BrokerStartError",
    "FaultProxy",
    "MosquittoBroker",
    "MosquittoNotFoundError",
    "ProxiedConnection",
    "Recorder",
    "TlsFiles",
    "find_mosquitto",
    "free_port",
    "make_tls_files",
]
