"""The embedded lab: a local Mosquitto behind a FaultProxy, with the fault buttons' actions.

The client connects to the proxy, never to the broker directly, so "cut network" can black-hole
the link (sockets stay open, nothing flows: only keep-alive can notice) while "crash broker"
kills the process (the proxy then closes the client's socket, as a real broker host would).
Every control is a short blocking call (milliseconds), fine to make from the GUI thread.
"""

from __future__ import annotations

from typing import Self

from rxmqtt._scoped import once_started
from rxmqtt.testing import BrokerConfig, FaultProxy, MosquittoBroker


class Lab:
    """One Mosquitto (with persistence, so a graceful restart keeps sessions) and one proxy."""

    def __init__(self) -> None:
        self._broker = MosquittoBroker(BrokerConfig(persistence=True, autosave_interval=1))
        self._proxy: FaultProxy | None = None

    def start(self) -> Self:
        """Start the broker and the proxy in front of it; on failure nothing is left running."""
        try:
            self._broker.start()
            self._proxy = FaultProxy(self._broker.host, self._broker.port).start()
        except BaseException:
            self.close()
            raise
        return self

    @property
    def proxy(self) -> FaultProxy:
        return once_started(self._proxy, "the lab is not started")

    @property
    def host(self) -> str:
        """Where clients connect: the proxy."""
        return self.proxy.host

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def broker_port(self) -> int:
        return self._broker.port

    @property
    def broker_running(self) -> bool:
        return self._broker.is_running

    @property
    def network_cut(self) -> bool:
        return self.proxy.is_blackholed

    def crash_broker(self) -> None:
        """SIGKILL: no DISCONNECT, no persistence save; clients see their socket close."""
        self._broker.kill()

    def start_broker(self) -> None:
        """Start the broker again on the same port and data directory (no-op if running)."""
        self._broker.start()

    def restart_broker(self) -> None:
        """Graceful restart: SIGTERM (Mosquitto saves its sessions), then start."""
        self._broker.restart(graceful=True)

    def cut_network(self) -> None:
        """Black-hole every proxied connection: open sockets, no bytes either way."""
        self.proxy.blackhole()

    def restore_network(self) -> None:
        """Forward everything again."""
        self.proxy.pass_through()

    def reset_network(self) -> None:
        """RST every proxied connection (a NAT box forgetting us)."""
        self.proxy.reset()

    def close(self) -> None:
        """Close the proxy (joins its thread) and the broker (kills it, removes its files)."""
        proxy, self._proxy = self._proxy, None
        try:
            if proxy is not None:
                proxy.close()
        finally:
            self._broker.close()

    def describe(self) -> str:
        proxy = self._proxy
        if proxy is None:
            return "embedded lab (stopped)"
        return f"embedded Mosquitto :{self._broker.port} behind FaultProxy :{proxy.port}"
