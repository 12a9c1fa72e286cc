"""Listening sockets, bound before a server starts so a taken port is a clear error, not a traceback."""

from __future__ import annotations

import errno
import socket


class PortUnavailable(Exception):
    pass


def bind_socket(host: str, port: int, flag: str) -> socket.socket:
    """Bind ``host:port`` for an HTTP server; ``flag`` names the option to change in the error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
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
