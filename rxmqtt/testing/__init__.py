"""rxmqtt test harness: a real Mosquitto on a free loopback port, and FaultProxy.

Used by rxmqtt's own tests and by applications (the pytest fixtures come with the installed
``rxmqtt`` pytest plugin: ``mosquitto``, ``mosquitto_factory``, ``tls_files``, ``fault_proxy``,
``fault_proxy_factory``). This package never imports paho.
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
from rxmqtt.testing.ejabberd import *  # noqa: F403 -- EjabberdBroker, EjabberdCluster, ...
from rxmqtt.testing.proxy import FaultProxy, ProxiedConnection
from rxmqtt.testing.recorder import Recorder

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
