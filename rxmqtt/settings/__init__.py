"""Connection settings: where to connect, how to authenticate, TLS, Last Will.

Pure values, validated when built: a bad argument raises ``ValueError``/``TypeError`` whose message
starts with the argument's name. Secrets that rotate (password files, tokens, client certificates)
are re-read on every connection attempt through :meth:`ConnectionSettings.credentials`,
:meth:`ConnectionSettings.resolved_auth_data` (an :class:`Authenticator`'s ``initial_data``)
and :meth:`TlsSettings.ssl_context`.

Private modules, one concept each: ``_checks`` (argument validation), ``_secrets`` (secret
providers and secret files), ``_authenticator`` (MQTT 5 enhanced authentication's
:class:`Authenticator`), ``_k8s_sat`` (its ``K8S-SAT`` flow over a watched token file),
``_endpoint``, ``_tls``, ``_transport`` (TCP or WebSockets), ``_will``, ``_text`` (parsing URL
and environment values), ``_url`` and ``_env`` (the :meth:`ConnectionSettings.from_url` and
:meth:`ConnectionSettings.from_env` parsers) and ``_connection`` (:class:`ConnectionSettings`).
"""

from ._authenticator import Authenticator
from ._connection import ConnectionSettings
from ._endpoint import Endpoint
from ._k8s_sat import K8S_SAT_AUTH_METHOD, K8sSatAuthenticator
from ._secrets import FileSecret
from ._secrets import SecretProvider as SecretProvider
from ._tls import TlsSettings
from ._transport import WebSocketTransport
from ._will import Will

__all__ = [
    "K8S_SAT_AUTH_METHOD",
    "Authenticator",
    "ConnectionSettings",
    "Endpoint",
    "FileSecret",
    "K8sSatAuthenticator",
    "TlsSettings",
    "WebSocketTransport",
    "Will",
]
