"""Ports for engines, from a configured range: free now, and not promised to another engine of ours."""

from __future__ import annotations

import socket

from gpufleet.common.errors import Unavailable


class NoFreePort(Unavailable):
    pass


class PortPool:
    def __init__(self, ports: range, host: str) -> None:
        self.ports = ports
        self.host = host
        self.taken: set[int] = set()

    def acquire(self) -> int:
        for port in self.ports:
            if port in self.taken:
                continue
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((self.host, port))
                except OSError:
                    continue
            self.taken.add(port)
            return port
        raise NoFreePort(
            f"no free port in {self.ports.start}-{self.ports.stop - 1} on {self.host}: "
            "widen the range (--service-port-range / --rpc-server-port-range)"
        )

    def hold(self, port: int) -> None:
        """A port already in use by an engine we adopted."""
        self.taken.add(port)

    def release(self, port: int) -> None:
        self.taken.discard(port)
