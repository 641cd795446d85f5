"""The protocol engine: paho-mqtt's MQTT 5 client driven by the asyncio loop's socket callbacks.

This package is the only place that imports paho. There is no paho network thread: the socket
is opened asynchronously (TCP connect and TLS handshake never block the loop), handed to paho,
and registered with the loop (``add_reader``/``add_writer``); ``loop_misc`` runs on a timer.
Every callback into the :class:`EngineHandler` therefore runs on the loop's thread.

The engine knows one attempt at a time, and each attempt is an Observable
(:meth:`Engine.attempt`): ``Connected`` on CONNACK success, then an ``AttemptEnded`` error when
the attempt fails or its link is lost -- unless the owner ended it with :meth:`Engine.close`,
which reports nothing. Reconnecting (a pipeline over attempts), backoff and queueing are the
owner's business (``rxmqtt/connection``).

Events flow one way: socket (``_socket_pump``) -> paho adapter (``_paho_link`` over
``_paho_client``; everything it reports is one of the ``_adapter_events``) -> ``Engine`` (whose
life is the table in ``_phase``) -> its handler (the connection).

Modules, the state machine: ``_engine`` (the Engine; imports no paho), ``_phase`` (phases and
allowed transitions), ``_attempt`` (an attempt's end), ``_watchdog`` (keep-alive), ``_linger``
(a close that does not reset), ``_disconnects`` (why an attempt or a connection ended).
Enhanced authentication: ``_auth_exchange`` (MQTT 5 AUTH as a pure state machine),
``_auth_driver`` (runs it with the application's authenticator). The socket: ``_sockets``
(non-blocking connect and TLS), ``_socket_pump`` (readiness -> reads and writes). The paho
adapter: ``_paho_link`` (configuration, every paho callback wired in one block, events out,
plain methods in), ``_paho_client`` (paho's client with the engine's seams: every private paho
access), ``_publish_codec`` (the one PUBLISH encoder and decoder), ``_convert`` (paho types to
ours and back), ``_seam_check`` (what the adapter relies on in paho, checked once per process),
``_adapter_events`` (what the adapter tells the engine).
"""

from ._attempt import AttemptEnded
from ._disconnects import (
    KEEP_ALIVE_TIMEOUT,
    PROTOCOL_ERROR,
    UNSPECIFIED_ERROR,
)
from ._engine import Engine, EngineHandler
from ._paho_client import PAHO_VERSION, PAHO_VERSION_TEXT, paho_seams_present
from ._seam_check import missing_paho_seams

__all__ = [
    "KEEP_ALIVE_TIMEOUT",
    "PAHO_VERSION",
    "PAHO_VERSION_TEXT",
    "PROTOCOL_ERROR",
    "UNSPECIFIED_ERROR",
    "AttemptEnded",
    "Engine",
    "EngineHandler",
    "missing_paho_seams",
    "paho_seams_present",
]
