"""Run a FastAPI app with uvicorn on an already-bound socket, inside the caller's event loop.

gpufleet runs the server and the embedded worker in one process and one loop
(DESIGN §2), so uvicorn must not install its own signal handlers: the launcher
owns SIGINT/SIGTERM and asks each server to stop.

With ``certfile`` and ``keyfile`` it serves HTTPS (the gpufleet server under ``--ssl-certfile``);
the pair is checked first (``common.tls``), so a bad file is one error line naming it, not a
traceback from inside uvicorn. The worker's own API on ``--worker-port`` is served without them.
"""

from __future__ import annotations

import socket
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from gpufleet.common.tls import check_server_pair

KEEP_ALIVE_SECONDS = 75


class EmbeddedServer(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    def install_signal_handlers(self) -> None:  # older uvicorn releases
        return


def make_server(
    app: FastAPI,
    sock: socket.socket,
    log_level: str,
    *,
    certfile: Path | None = None,
    keyfile: Path | None = None,
) -> EmbeddedServer:
    """A server for ``app`` on ``sock``: HTTPS when ``certfile`` and ``keyfile`` are given, else HTTP."""
    host, port = sock.getsockname()[:2]
    if certfile is not None and keyfile is not None:
        check_server_pair(certfile, keyfile)
        certfile, keyfile = certfile.expanduser(), keyfile.expanduser()
    elif certfile is not None or keyfile is not None:
        raise ValueError("make_server: certfile and keyfile go together")
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
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
    )
    return EmbeddedServer(config)
