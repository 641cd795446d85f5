"""Opening an engine's socket without blocking the loop (paho's own connect blocks): address
lookup, TCP connect with Happy Eyeballs (RFC 8305), the TLS handshake, the WebSocket upgrade."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import socket
import ssl
from collections.abc import Sequence
from typing import Any

from ..settings import ConnectionSettings, Endpoint, WebSocketTransport
from ._nonblocking import wait_fd
from ._websocket import WebSocketStream, upgrade

__all__ = ["Address", "OpenedSocket", "connect_first", "open_socket", "resolve"]

Address = tuple[int, int, int, Any]
"""(family, type, proto, sockaddr): one ``getaddrinfo`` answer, as ``socket.socket`` takes it."""

OpenedSocket = socket.socket | ssl.SSLSocket | WebSocketStream
"""What paho is handed: a TCP or TLS socket, or a WebSocket stream over one."""


async def resolve(loop: asyncio.AbstractEventLoop, host: str, port: int) -> list[Address]:
    """The TCP addresses of ``host`` (the seam tests replace to give a name two addresses)."""
    literal = _literal_address(host, port)
    if literal is not None:
        return literal
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [(family, type_, proto, address) for family, type_, proto, _, address in infos]


async def open_socket(
    loop: asyncio.AbstractEventLoop, settings: ConnectionSettings, endpoint: Endpoint
) -> OpenedSocket:
    """Connect to ``endpoint`` without blocking the loop: address lookup, TCP connect (Happy
    Eyeballs over its addresses), then with ``settings.tls`` the TLS handshake and with a
    WebSocket transport the HTTP upgrade. The caller bounds it all with ``connect_timeout``."""
    addresses = await resolve(loop, endpoint.host, endpoint.port)
    if not addresses:
        raise OSError(f"no address for {endpoint.host}")
    sock: socket.socket | ssl.SSLSocket = await connect_first(
        loop, addresses, settings.happy_eyeballs_delay
    )
    try:
        if settings.tls is not None:
            sock = await tls_handshake(loop, settings, sock, endpoint)
        transport = settings.transport
        if isinstance(transport, WebSocketTransport):
            return await upgrade(loop, sock, transport, _host_header(settings, endpoint))
        return sock
    except BaseException:
        sock.close()
        raise


def _host_header(settings: ConnectionSettings, endpoint: Endpoint) -> str:
    """The upgrade's ``Host``: the server's name (``server_hostname`` if set), with the port
    unless it is the scheme's default."""
    name = endpoint.host
    if settings.tls is not None and settings.tls.server_hostname is not None:
        name = settings.tls.server_hostname
    if ":" in name:
        name = f"[{name}]"
    default_port = 443 if settings.tls is not None else 80
    return name if endpoint.port == default_port else f"{name}:{endpoint.port}"


def _interleaved(addresses: Sequence[Address]) -> list[Address]:
    """Distinct addresses with the families alternating, the first answer's family first
    (RFC 8305 4): a broken IPv6 path costs one stagger delay, not all of IPv6's addresses."""
    by_family: dict[int, list[Address]] = {}
    for address in dict.fromkeys(addresses):
        by_family.setdefault(address[0], []).append(address)
    rounds = itertools.zip_longest(*by_family.values())
    return [address for round_ in rounds for address in round_ if address is not None]


async def connect_first(
    loop: asyncio.AbstractEventLoop, addresses: Sequence[Address], delay: float | None
) -> socket.socket:
    """TCP-connect to the first of ``addresses`` that answers.

    With a ``delay`` the attempts are staggered (Happy Eyeballs, RFC 8305, as asyncio's
    ``create_connection(happy_eyeballs_delay=...)``): the next address is tried when an attempt
    fails or ``delay`` seconds pass, earlier attempts carrying on; the first connection wins
    and the others are cancelled and closed. With ``None`` they are tried one after another.
    """
    ordered = _interleaved(addresses)
    waiting = list(ordered)
    running: set[asyncio.Task[socket.socket]] = set()
    errors: list[tuple[Address, BaseException]] = []
    started: dict[asyncio.Task[socket.socket], Address] = {}
    try:
        while waiting or running:
            if waiting and (delay is not None or not running):
                address = waiting.pop(0)
                task = loop.create_task(_connect(loop, address))
                started[task] = address
                running.add(task)
            timeout = delay if waiting and delay is not None else None
            done, running = await asyncio.wait(
                running, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                error = task.exception()
                if error is None:
                    return task.result()
                errors.append((started[task], error))
    finally:
        for task in running:
            task.cancel()
        for result in await asyncio.gather(*running, return_exceptions=True):
            if isinstance(result, socket.socket):  # connected as it was cancelled
                result.close()
    raise _all_failed(errors)


def _all_failed(errors: list[tuple[Address, BaseException]]) -> BaseException:
    if len(errors) == 1:
        return errors[0][1]
    described = "; ".join(f"{_describe(address)}: {error}" for address, error in errors)
    return OSError(f"all {len(errors)} addresses failed: {described}")


def _describe(address: Address) -> str:
    host, port = address[3][:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _connect(loop: asyncio.AbstractEventLoop, address: Address) -> socket.socket:
    family, type_, proto, sockaddr = address
    sock = socket.socket(family, type_, proto)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, sockaddr)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def _literal_address(host: str, port: int) -> list[Address] | None:
    """The address of a host given as an IP literal, without ``getaddrinfo``: the loop runs
    that in its thread pool, a hop that a thousand connections opening at once queue for.
    ``None`` for a name (or a scoped IPv6 address), which the resolver must see."""
    if "%" in host:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.version == 4:
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, (host, port))]
    return [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, (host, port, 0, 0))]


async def tls_handshake(
    loop: asyncio.AbstractEventLoop,
    settings: ConnectionSettings,
    sock: socket.socket,
    endpoint: Endpoint,
) -> ssl.SSLSocket:
    """Wrap ``sock`` and run the handshake, waiting for readiness on the loop."""
    tls = settings.tls
    assert tls is not None
    context = tls.ssl_context()
    server_hostname = tls.server_hostname or endpoint.host
    tls_sock = context.wrap_socket(
        sock, server_hostname=server_hostname, do_handshake_on_connect=False
    )
    try:
        while True:
            try:
                tls_sock.do_handshake()
                return tls_sock
            except ssl.SSLWantReadError:
                await wait_fd(loop, tls_sock, readable=True)
            except ssl.SSLWantWriteError:
                await wait_fd(loop, tls_sock, readable=False)
    except BaseException:
        tls_sock.close()  # wrap_socket() detached ``sock``: closing that closes nothing
        raise
