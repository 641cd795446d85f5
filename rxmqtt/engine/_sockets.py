"""Opening an engine's socket without blocking the loop (paho's own connect blocks)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from typing import Any

from ..settings import ConnectionSettings, Endpoint

OpenSocket = socket.socket | ssl.SSLSocket
"""A connected socket, TLS or not."""


async def open_socket(
    loop: asyncio.AbstractEventLoop, settings: ConnectionSettings, endpoint: Endpoint
) -> OpenSocket:
    """Connect to ``endpoint`` without blocking the loop: address lookup, TCP connect and
    (with ``settings.tls``) the TLS handshake."""
    infos = _literal_address(endpoint) or await loop.getaddrinfo(
        endpoint.host, endpoint.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    last_error: OSError | None = None
    for family, type_, proto, _, address in infos:
        sock = socket.socket(family, type_, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        except BaseException:
            sock.close()
            raise
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if settings.tls is None:
            return sock
        try:
            return await tls_handshake(loop, settings, sock, endpoint)
        except BaseException:
            sock.close()
            raise
    raise last_error or OSError(f"no address for {endpoint.host}")


AddressInfo = tuple[int, int, int, str, tuple[Any, ...]]


def _literal_address(endpoint: Endpoint) -> list[AddressInfo] | None:
    """The address of a host given as an IP literal, without ``getaddrinfo``: the loop runs
    that in its thread pool, a hop that a thousand connections opening at once queue for.
    ``None`` for a name (or a scoped IPv6 address), which the resolver must see."""
    if "%" in endpoint.host:
        return None
    try:
        address = ipaddress.ip_address(endpoint.host)
    except ValueError:
        return None
    if address.version == 4:
        return [
            (
                socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (endpoint.host, endpoint.port),
            )
        ]
    return [
        (
            socket.AF_INET6,
            socket.SOCK_STREAM,
            socket.IPPROTO_TCP,
            "",
            (endpoint.host, endpoint.port, 0, 0),
        )
    ]


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


async def wait_fd(loop: asyncio.AbstractEventLoop, sock: ssl.SSLSocket, *, readable: bool) -> None:
    """Wait until ``sock`` is readable (or writable)."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if readable:
        loop.add_reader(sock, wake)
    else:
        loop.add_writer(sock, wake)
    try:
        await ready
    finally:
        if readable:
            loop.remove_reader(sock)
        else:
            loop.remove_writer(sock)
