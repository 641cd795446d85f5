"""A real ejabberd MQTT 5 broker (``mod_mqtt``) on free loopback ports, alone or as a cluster.

Private: the harness of rxmqtt's own interop tests (tests/interop), not a supported API; it may
change or go away in any release.

:class:`EjabberdBroker` has the surface of :class:`~rxmqtt.testing.MosquittoBroker` where it
makes sense (``start``/``stop``/``kill``/``restart``/``close``, ``host``/``port``/``url``,
``log_text()``, context manager). :class:`EjabberdCluster` starts ``n`` nodes that share one
private ``epmd`` and one generated Erlang cookie, and joins them with ``ejabberdctl join_cluster``.

How an instance runs (Debian's ``ejabberd`` package, tested with 23.01):

- Everything lives in a private temp dir owned by the ``ejabberd`` user: ``conf/ejabberd.yml``
  (generated; ``EJABBERD_CONFIG_PATH``), ``conf/ejabberdctl.cfg`` (Erlang options: the cookie,
  loopback-only distribution, no auto-started epmd), ``spool/`` (the Mnesia dir; kept across
  restarts), ``logs/`` and ``home/``.
- ``ejabberdctl --config-dir ... --ctl-config ... --spool ... --logs ... --node
  ejabberd-<port>@localhost foreground`` runs as the ``ejabberd`` user (we are root; ejabberdctl
  refuses any other user) in a new session; the Erlang VM is its direct child.
- ``epmd -port <free port> -address 127.0.0.1`` is started by us, per broker or per cluster, and
  found by the nodes and by ``ejabberdctl`` through ``ERL_EPMD_PORT``: nothing touches a system
  epmd on 4369, and :meth:`close` kills it.
- The only listeners are the MQTT port and the Erlang distribution port, both on 127.0.0.1.
- ``mod_mqtt`` authenticates every client; the config allows anonymous login (``login_anon``), which
  accepts any username with a *non-empty* password. ejabberd 23.01 answers a CONNECT without a
  password with CONNACK 0x87 (not authorized), so clients must send :attr:`EjabberdBroker.username`
  and :attr:`EjabberdBroker.password` (any non-empty pair works).

Readiness is a real MQTT 5 CONNECT answered by a successful CONNACK (not just an open port).
"""

# One concept a module: _discovery (is ejabberd here, where are its tools), _config (EjabberdConfig
# and the generated files), _erlang (install user, env, epmd, the VM process), _probe (the CONNACK
# readiness check), _broker (EjabberdBroker) and _cluster (EjabberdCluster).
from rxmqtt.testing._ejabberd._broker import EjabberdBroker
from rxmqtt.testing._ejabberd._cluster import EjabberdCluster
from rxmqtt.testing._ejabberd._config import EjabberdConfig
from rxmqtt.testing._ejabberd._discovery import INSTALL_HINT as INSTALL_HINT
from rxmqtt.testing._ejabberd._discovery import (
    EjabberdNotFoundError,
    ejabberd_unavailable_reason,
    find_ejabberdctl,
)

__all__ = [
    "EjabberdBroker",
    "EjabberdCluster",
    "EjabberdConfig",
    "EjabberdNotFoundError",
    "ejabberd_unavailable_reason",
    "find_ejabberdctl",
]
