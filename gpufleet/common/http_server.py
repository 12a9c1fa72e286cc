"""Run a FastAPI app with uvicorn on an already-bound socket, inside the caller's event loop.

gpufleet runs the server and the embedded worker in one process and one loop
(DESIGN §2), so uvicorn must not install its own signal handlers: the launcher
owns SIGINT/SIGTERM and asks each server to stop.
"""

from __future__ import annotations

import socket
from collections.abc import Generator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI


class EmbeddedServer(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    def install_signal_handlers(self) -> None:  # older uvicorn releases
        return


def make_server(app: FastAPI, sock: socket.socket, log_level: str) -> EmbeddedServer:
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    return EmbeddedServer(config)
