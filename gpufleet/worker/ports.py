"""Ports for engines, from a configured range: free now, and not promised to another engine of ours.

Engines are planned in threads (``asyncio.to_thread``), several at once when instances arrive
together: choosing a port (is it promised? can it be bound?) and promising it happen under one
lock, so two engines of this worker are never given the same port. A port stays promised until
the engine that got it is gone (``release``), and ports the server lists for this worker's other
instances can be passed as ``avoid``: an engine of ours may hold one that this process did not
start (adopted, or not yet re-adopted).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Collection

import psutil

from gpufleet.common.errors import Unavailable


class NoFreePort(Unavailable):
    pass


class PortPool:
    def __init__(self, ports: range, host: str) -> None:
        self.ports = ports
        self.host = host
        self.taken: set[int] = set()
        self._lock = threading.Lock()  # acquire() runs in worker threads

    def acquire(self, avoid: Collection[int] = ()) -> int:
        with self._lock:
            for port in self.ports:
                if port in self.taken or port in avoid:
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

    def acquire_many(self, count: int, avoid: Collection[int] = ()) -> list[int]:
        """``count`` ports (a Ray node needs a dozen), all or none: those taken are released on failure."""
        taken: list[int] = []
        try:
            for _ in range(count):
                taken.append(self.acquire(avoid))
        except BaseException:
            for port in taken:
                self.release(port)
            raise
        return taken

    def hold(self, port: int) -> None:
        """A port already in use by an engine we adopted."""
        with self._lock:
            self.taken.add(port)

    def release(self, port: int) -> None:
        with self._lock:
            self.taken.discard(port)


def listens_on(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` (or a process it started) listens on TCP ``port``; None when the system
    will not say (no permission). Tells an engine's own answer from another process's on its port."""
    try:
        process = psutil.Process(pid)
        for member in (process, *process.children(recursive=True)):
            for connection in member.net_connections(kind="inet"):
                if connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port:
                    return True
    except psutil.AccessDenied:
        return None
    except psutil.NoSuchProcess:
        return False
    return False


async def accepts(host: str, port: int) -> bool:
    """Whether a TCP connection to ``host:port`` is accepted (closed at once; servers such as
    ggml-rpc-server drop it and wait for the next client)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    await writer.wait_closed()
    return True
