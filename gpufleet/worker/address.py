"""Which IP address a worker advertises to the server.

- ``--worker-ip`` when given;
- 127.0.0.1 when the process binds a loopback ``--host`` (nothing else could reach it);
- the bound address when ``--host`` names one;
- otherwise the address of the interface that routes to the server. When the
  server is on this machine (the embedded worker), that route is loopback, so
  the machine's primary address is used instead, where it has one: other
  workers must be able to reach this one for distributed inference.

The route is asked of the kernel with an unconnected UDP socket's ``connect``,
which sends no packet.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlparse

from gpufleet.common.net import is_loopback
from gpufleet.config import Settings

# A TEST-NET-1 address (RFC 5737): only used to ask the kernel for the default route.
DEFAULT_ROUTE_PROBE = "192.0.2.1"


def route_source_ip(destination: str) -> str | None:
    try:
        infos = socket.getaddrinfo(destination, 9, type=socket.SOCK_DGRAM)
    except socket.gaierror:
        return None
    for family, _, _, _, sockaddr in infos:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect(sockaddr)
            except OSError:
                continue
            address = probe.getsockname()[0]
            return str(address)
    return None


def advertised_ip(settings: Settings) -> str:
    if settings.worker_ip:
        return settings.worker_ip
    if is_loopback(settings.host):
        return "127.0.0.1"
    if settings.host not in ("0.0.0.0", "::", ""):
        return settings.host
    server_host = urlparse(settings.server_urls[0]).hostname or "127.0.0.1"
    address = route_source_ip(server_host)
    if address is None or ipaddress.ip_address(address).is_loopback:
        address = route_source_ip(DEFAULT_ROUTE_PROBE) or address
    return address or "127.0.0.1"
