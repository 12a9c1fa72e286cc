"""``gpufleet start``: the server, the embedded worker, or both, in one process and one event loop.

Order: prepare the server (migrations, admin, token) → bind its port → start
serving → start the embedded worker (it registers over loopback HTTP, the same
path as any remote worker). First of all, the data dir is made private (0700, its
files and the SQLite database 0600). Secrets never go on a command line here:
the embedded worker runs in this process, and engines get their keys by environment.
SIGINT/SIGTERM stop the worker first (it stops its engines unless ``--keep-engines`` and tells the
server it is leaving), then the server; all within 10 s (``stop_signals``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from gpufleet.cli.stop_signals import StopSignals
from gpufleet.common.demo_model import DemoReady, DemoUnavailable, demo_model_file
from gpufleet.common.errors import GpufleetError
from gpufleet.common.http_server import make_server
from gpufleet.common.net import bind_socket
from gpufleet.common.paths import secure_data_dir
from gpufleet.config import Settings
from gpufleet.server import demo
from gpufleet.server.app import create_app
from gpufleet.server.runtime import ServerRuntime
from gpufleet.server.ui_assets import ensure_built
from gpufleet.worker.agent import WorkerAgent

logger = logging.getLogger(__name__)


@dataclass
class Banner:
    """What ``start`` tells the person who ran it, once the server listens."""

    url: str
    password_file: str | None
    token_file: str | None
    ui_problem: str | None = None  # the web UI is not there: what to do about it


def _sqlite_file(settings: Settings) -> Path | None:
    """The SQLite database file of the server, if it uses one."""
    if not settings.effective_database_url.startswith("sqlite"):
        return None  # another database (or a malformed URL, which the database layer explains)
    database = make_url(settings.effective_database_url).database
    return Path(database) if database and database != ":memory:" else None


async def run(
    settings: Settings,
    announce: Callable[[Banner], None],
    announce_demo: Callable[[DemoReady | str], None] = print,
) -> None:
    stop = asyncio.Event()
    secure_data_dir(settings.data_dir, _sqlite_file(settings) if settings.runs_server else None)
    demo_file = None
    if settings.demo:
        if not settings.runs_server:
            raise DemoUnavailable("--demo deploys a model through the server: drop --server-url to run one")
        demo_file = demo_model_file()  # fails now, with the install command, if the package is missing
    agent: WorkerAgent | None = None

    def kill_engines() -> None:
        if agent is not None and not settings.keep_engines:
            agent.supervisor.kill_engines()

    StopSignals(stop, kill_engines).install(asyncio.get_running_loop())

    if settings.runs_worker:
        agent = WorkerAgent(settings, settings.token or "")  # checks --device-inventory before anything starts

    server_task: asyncio.Task[None] | None = None
    server = None
    runtime = None
    if settings.runs_server:
        runtime = ServerRuntime(settings)
        await runtime.prepare()
        if agent is not None:
            agent.client.cluster_token = runtime.cluster_token
        sock = bind_socket(settings.host, settings.port, "--port")
        ui_assets = await asyncio.to_thread(ensure_built)  # from a source tree: rebuilt when stale
        server = make_server(
            create_app(runtime, ui_assets),
            sock,
            settings.log_level,
            certfile=settings.ssl_certfile,  # HTTPS for API, UI and /v1; the worker port stays HTTP
            keyfile=settings.ssl_keyfile,
        )
        server_task = asyncio.create_task(server.serve(sockets=[sock]), name="server-http")
        while not server.started and not server_task.done():
            await asyncio.sleep(0.02)
        if server_task.done():
            await server_task
            return
        password_file = settings.initial_password_file
        announce(
            Banner(
                url=settings.server_urls[0],
                token_file=str(settings.token_file) if not settings.token else None,
                password_file=str(password_file) if password_file.exists() else None,
                ui_problem=ui_assets.problem,
            )
        )

    worker_task = asyncio.create_task(agent.run(stop), name="worker") if agent is not None else None
    demo_task = None
    if demo_file is not None and runtime is not None:
        demo_task = asyncio.create_task(
            demo.run(
                runtime.db,
                demo_file,
                f"{settings.server_urls[0]}/v1",
                settings.data_dir / "demo_api_key",
                announce_demo,
                announce_demo,
            ),
            name="demo",
        )

    waiters: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
    waiters += [t for t in (server_task, worker_task) if t is not None]
    done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    if worker_task in done and server_task is not None and not server_task.done() and not stop.is_set():
        _embedded_worker_ended(worker_task)  # the server stays up: its API and other workers still work
        await asyncio.wait([waiters[0], server_task], return_when=asyncio.FIRST_COMPLETED)
        worker_task = None
    stop.set()
    if demo_task is not None:
        demo_task.cancel()
        await asyncio.gather(demo_task, return_exceptions=True)
    try:
        if worker_task is not None:
            await worker_task
    finally:
        if server is not None and server_task is not None:
            if runtime is not None:
                runtime.bus.close()  # watch streams never end by themselves; uvicorn would wait for them
            server.should_exit = True
            await server_task
        waiters[0].cancel()


def _embedded_worker_ended(task: asyncio.Task[None]) -> None:
    """Log why the embedded worker stopped while its server runs on (the server is not stopped for it)."""
    exc = task.exception()
    if exc is None:
        logger.error("the embedded worker stopped; the server keeps running without it")
    else:
        logger.error(
            "the embedded worker stopped: %s. The server keeps running without it; restart gpufleet to try again",
            exc,
            exc_info=exc if not isinstance(exc, GpufleetError) else None,
        )
