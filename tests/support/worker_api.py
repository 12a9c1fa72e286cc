"""The worker's own HTTP app (``create_worker_app``), served in-process on a free loopback port.

For integration tests of server→worker calls without a whole worker agent: the test says which
log file each instance has (``logs``), the way the supervisor would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from gpufleet.common.http_server import make_server
from gpufleet.common.net import bind_socket, free_port
from gpufleet.common.worker_api_token import server_bearer, token_hash
from gpufleet.worker.app import create_worker_app


async def _no_metrics() -> bytes:
    return b""


@asynccontextmanager
async def worker_api(name: str, api_token: str, logs: dict[int, Path], cluster_token: str) -> AsyncIterator[int]:
    """Serve the worker app; yields its port. ``logs`` maps instance id → log file, read live.

    It expects what a real worker with ``api_token`` in a cluster of ``cluster_token`` expects."""
    port = free_port()
    sock = bind_socket("127.0.0.1", port, "--worker-port")
    bearer = server_bearer(cluster_token, token_hash(api_token))
    app = create_worker_app(_no_metrics, lambda: name, api_token=bearer, log_path=logs.get)
    server = make_server(app, sock, "warning")
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task
