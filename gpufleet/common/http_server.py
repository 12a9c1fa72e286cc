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

KEEP_ALIVE_SECONDS = 75


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
        # Longer than a heartbeat interval (10 s by default): a worker's next heartbeat reuses its
        # connection instead of racing the server closing it (uvicorn's default is 5 s), and thousands
        # of workers cost no TCP handshake per beat.
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        server_header=False,
    )
    return EmbeddedServer(config)
