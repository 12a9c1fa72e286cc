"""Listening sockets, bound before a server starts so a taken port is a clear error, not a traceback."""

from __future__ import annotations

import errno
import ipaddress
import socket

from gpufleet.common.errors import Unavailable


class PortUnavailable(Unavailable):
    """A port to listen on is taken or not ours to use; the message names the flag to change."""


def bind_socket(host: str, port: int, flag: str) -> socket.socket:
    """Bind ``host:port`` for an HTTP server; ``flag`` names the option to change in the error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets whose ``proto`` says TCP
    # (a plain ``socket(family, SOCK_STREAM)`` has proto 0), and without it every response written in
    # two parts (headers, body) waits ~40 ms on Nagle and the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortUnavailable(f"port {port} on {host} is already in use: choose another with {flag}") from exc
        raise PortUnavailable(f"cannot listen on {host}:{port} ({exc.strerror}): check --host and {flag}") from exc
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (tests and ephemeral services)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
