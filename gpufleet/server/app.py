"""The FastAPI application factory of the server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gpufleet import __version__
from gpufleet.server import errors
from gpufleet.server.auth import AuthMiddleware
from gpufleet.server.gateway import routes as gateway
from gpufleet.server.routes import (
    api_keys,
    auth,
    devices,
    health,
    instances,
    model_files,
    models,
    rpc_servers,
    usage,
    users,
    watch,
    workers,
)
from gpufleet.server.runtime import ServerRuntime

ROUTERS = (
    health,
    auth,
    users,
    api_keys,
    workers,
    devices,
    models,
    instances,
    rpc_servers,
    model_files,
    watch,
    usage,
    gateway,
)


def create_app(runtime: ServerRuntime) -> FastAPI:
    """Build the app around a prepared runtime (``await runtime.prepare()`` first)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.start_controllers()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="gpufleet",
        version=__version__,
        lifespan=lifespan,
        description="GPU cluster manager: management API under /api, OpenAI-compatible API under /v1.",
    )
    app.state.runtime = runtime
    app.add_middleware(AuthMiddleware, resolver_factory=lambda: runtime.resolver)
    errors.install(app)
    for module in ROUTERS:
        app.include_router(module.router)
    return app
