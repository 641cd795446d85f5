"""Several ejabberd nodes joined into one Mnesia cluster: :class:`EjabberdCluster`."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
import time
import weakref
from dataclasses import replace
from pathlib import Path
from typing import Any, Self

from rxmqtt._scoped import StartedOnEnter
from rxmqtt.testing._ejabberd._broker import EjabberdBroker
from rxmqtt.testing._ejabberd._config import EjabberdConfig
from rxmqtt.testing._ejabberd._discovery import (
    EjabberdNotFoundError,
    ejabberd_unavailable_reason,
    find_ejabberdctl,
)
from rxmqtt.testing._ejabberd._erlang import Epmd, RunAs
from rxmqtt.testing._process import BrokerStartError


class EjabberdCluster(StartedOnEnter):
    """``n`` ejabberd nodes on loopback joined into one Mnesia cluster.

    The nodes share one private epmd and one generated cookie; node 0 starts first and every
    other node runs ``ejabberdctl join_cluster <node 0>`` (which restarts ejabberd on the joining
    node). Each node serves MQTT on its own port: :attr:`endpoints` lists them for
    ``ConnectionSettings(endpoints=...)``. ``close()`` kills every node and the epmd.
    """

    def __init__(
        self,
        n: int = 2,
        config: EjabberdConfig | None = None,
        *,
        startup_timeout: float = 60.0,
        **config_kwargs: Any,
    ) -> None:
        if n < 1:
            raise ValueError("n must be >= 1")
        base = config or EjabberdConfig()
        self._config = replace(base, **config_kwargs) if config_kwargs else base
        ctl = find_ejabberdctl()
        reason = ejabberd_unavailable_reason()
        if reason is not None:
            raise EjabberdNotFoundError(reason)
        run_as = RunAs(ctl)
        self._cookie = secrets.token_hex(16)
        self._dir = Path(tempfile.mkdtemp(prefix="rxmqtt-ejabberd-cluster-"))
        run_as.own(self._dir)
        self._epmd = Epmd(self._dir, run_as)
        self._finalizer = weakref.finalize(self, _close_cluster_dir, self._epmd, self._dir)
        self.nodes: list[EjabberdBroker] = []
        try:
            for _ in range(n):
                self.nodes.append(
                    EjabberdBroker(
                        self._config,
                        startup_timeout=startup_timeout,
                        cookie=self._cookie,
                        _epmd=self._epmd,
                    )
                )
        except BaseException:
            self.close()
            raise

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, index: int) -> EjabberdBroker:
        return self.nodes[index]

    @property
    def endpoints(self) -> list[str]:
        """``["127.0.0.1:<port>", ...]``, node order."""
        return [node.endpoint for node in self.nodes]

    @property
    def cookie(self) -> str:
        """The generated Erlang cookie every node of the cluster shares."""
        return self._cookie

    def start(self) -> Self:
        """Start every node (in parallel) and join nodes 1.. to node 0; returns once all serve
        MQTT and list each other as cluster members."""
        errors: list[BaseException] = []

        def start_one(node: EjabberdBroker) -> None:
            try:
                node.start()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start_one, args=(node,)) for node in self.nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self.join(node, first)
        for node in self.nodes:
            node.wait_ready()
        return self

    def join(self, node: EjabberdBroker, to: EjabberdBroker) -> None:
        """``ejabberdctl --node <node> join_cluster <to>``; waits until both list each other."""
        node.ctl("join_cluster", to.node)
        deadline = time.monotonic() + 30
        while True:
            members = self.list_cluster(node)
            if to.node in members and node.node in members:
                return
            if time.monotonic() > deadline:
                raise BrokerStartError(
                    f"{node.node} did not join {to.node}: list_cluster says {members}"
                )
            time.sleep(0.1)

    def list_cluster(self, via: EjabberdBroker | None = None) -> list[str]:
        """Node names in the cluster, as ``ejabberdctl list_cluster`` on ``via`` reports them."""
        node = via or next((n for n in self.nodes if n.is_running), self.nodes[0])
        return [name.strip("'\"") for name in node.ctl("list_cluster").split()]

    def close(self) -> None:
        """Kill every node and the shared epmd; remove the temp dirs. Idempotent."""
        for node in self.nodes:
            node.close()
        self._finalizer()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"<EjabberdCluster {self.endpoints if self.nodes else []}>"


def _close_cluster_dir(epmd: Epmd, directory: Path) -> None:
    """Kill the cluster's shared epmd and remove its directory (the finalizer's job)."""
    epmd.close()
    shutil.rmtree(directory, ignore_errors=True)
