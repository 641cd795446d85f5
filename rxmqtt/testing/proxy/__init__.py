"""FaultProxy: a loopback TCP proxy that can black-hole, delay, reset or refuse connections.

The proxy runs its own asyncio loop in a daemon thread, so it can be driven from sync tests,
from async tests running another loop, and from a Qt application alike. Every control method
blocks until the change is in effect on the proxy's loop, so a test can rely on it immediately.
Private modules: ``_fault_proxy`` (the listener and proxy-wide modes), ``_connection`` (one
proxied connection and its per-connection controls).
"""

from rxmqtt.testing.proxy._connection import ProxiedConnection
from rxmqtt.testing.proxy._fault_proxy import FaultProxy

__all__ = ["FaultProxy", "ProxiedConnection"]
