"""An in-process gpufleet server on a free loopback port, for API-level tests.

It is the real app (real uvicorn, real database, real controllers) run inside
the test's event loop, so a test can also call services on ``runtime`` —
for example to place an instance the way the scheduler will.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gpufleet.common.http_server import make_server
from gpufleet.common.net import bind_socket, free_port
from gpufleet.config import Settings
from gpufleet.server.app import create_app
from gpufleet.server.runtime import ServerRuntime
from gpufleet.server.ui_assets import UiAssets

ADMIN_PASSWORD = "admin-password-1"


@dataclass
class RunningServer:
    url: str
    runtime: ServerRuntime
    settings: Settings

    @property
    def token(self) -> str:
        return self.runtime.cluster_token

    def client(self, credential: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10, trust_env=False)

    async def login(self, username: str = "admin", password: str = ADMIN_PASSWORD) -> str:
        async with self.client() as client:
            response = await client.post("/api/auth/login", json={"username": username, "password": password})
            response.raise_for_status()
            return str(response.json()["access_token"])

    async def admin(self) -> httpx.AsyncClient:
        return self.client(await self.login())


def server_settings(data_dir: Path, database_url: str | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": free_port(),
        "data_dir": data_dir,
        "database_url": database_url,
        "bootstrap_password": ADMIN_PASSWORD,
        "disable_worker": True,
        "log_level": "warning",
        # local_path models: the tests' own files (pytest's temp dirs) and the placeholder path of
        # ``builders.local_model``, absent on purpose (a file only the workers would have)
        "allowed_model_dirs": f"{Path(tempfile.gettempdir()).resolve()},/models",
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running_server(
    data_dir: Path, database_url: str | None = None, ui_assets: UiAssets | None = None, **overrides: Any
) -> AsyncIterator[RunningServer]:
    settings = server_settings(data_dir, database_url, **overrides)
    runtime = ServerRuntime(settings)
    await runtime.prepare()
    sock = bind_socket(settings.host, settings.port, "--port")
    server = make_server(create_app(runtime, ui_assets), sock, "warning")
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
        await asyncio.sleep(0.01)
    try:
        yield RunningServer(url=f"http://127.0.0.1:{settings.port}", runtime=runtime, settings=settings)
    finally:
        runtime.bus.close()
        server.should_exit = True
        await task
