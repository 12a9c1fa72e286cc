"""Which address a worker's engines listen on: the one the worker advertises, not every interface.

An engine bound to ``0.0.0.0`` answers on every network the machine is on; bound to the
advertised address it answers where the gateway (and other workers' RPC clients) reach it, and
nowhere else. The engines still require their API key there (``secrets.engine_key``).

- a loopback ``--host``: 127.0.0.1 (the embedded worker of a single-machine setup);
- a specific ``--host``: that address;
- a wildcard ``--host`` (the default): the advertised address (``--worker-ip`` or the detected one)
  when it belongs to this machine; behind NAT, where ``--worker-ip`` is an outside address that
  no local interface has, the wildcard, with a warning.
"""

from __future__ import annotations

import logging
import socket

from gpufleet.common.net import is_loopback

logger = logging.getLogger(__name__)

WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def is_local_address(address: str) -> bool:
    """Whether a socket can be bound to ``address`` here (one of this machine's interfaces has it)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


def engine_bind_host(host: str, advertised_ip: str) -> str:
    if is_loopback(host):
        return "127.0.0.1"
    if host not in WILDCARDS:
        return host
    if is_local_address(advertised_ip):
        return advertised_ip
    logger.warning(
        "the advertised address %s is not on this machine (NAT?): engines listen on %s, protected by their API keys",
        advertised_ip,
        host or "0.0.0.0",
    )
    return host
