"""Which address a worker advertises."""

from __future__ import annotations

import ipaddress

from gpufleet.config import Settings
from gpufleet.worker.address import advertised_ip, route_source_ip


def test_explicit_worker_ip_wins() -> None:
    assert advertised_ip(Settings(worker_ip="10.1.2.3")) == "10.1.2.3"


def test_loopback_host_advertises_loopback() -> None:
    assert advertised_ip(Settings(host="127.0.0.1")) == "127.0.0.1"
    assert advertised_ip(Settings(host="localhost")) == "127.0.0.1"


def test_specific_bind_address_is_advertised() -> None:
    assert advertised_ip(Settings(host="10.9.8.7")) == "10.9.8.7"


def test_route_to_the_server_decides_otherwise() -> None:
    # A worker joining a server on loopback routes to it over loopback.
    assert route_source_ip("127.0.0.1") == "127.0.0.1"
    # The embedded worker on 0.0.0.0 never advertises loopback when the machine has another address.
    address = advertised_ip(Settings(host="0.0.0.0"))
    assert ipaddress.ip_address(address)
    default = route_source_ip("192.0.2.1")
    if default is not None:
        assert address == default
