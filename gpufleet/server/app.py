"""The FastAPI application factory of the server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gpufleet import __version__
from gpufleet.common.fastapi_app import quiet_fastapi
from gpufleet.common.gc_tuning import tune_for_server
from gpufleet.common.process_limits import raise_open_files_limit
from gpufleet.common.units import MiB
from gpufleet.server import errors, openapi, ui
from gpufleet.server.auth import AuthMiddleware
from gpufleet.server.body_limit import BodyLimitMiddleware
from gpufleet.server.gateway import routes as gateway
from gpufleet.server.gateway.asgi import GatewayMiddleware
from gpufleet.server.login_throttle import LoginThrottle
from gpufleet.server.routes import (
    api_keys,
    auth,
    devices,
    engine_keys,
    health,
    instances,
    metrics_targets,
    model_files,
    models,
    rpc_servers,
    usage,
    users,
    watch,
    workers,
)
from gpufleet.server.runtime import ServerRuntime
from gpufleet.server.ui_assets import UiAssets, built_assets

# The gateway first: its routes are the hot path, and routes are matched in order.
ROUTERS = (
    gateway,
    health,
    auth,
    users,
    api_keys,
    workers,
    devices,
    models,
    instances,
    engine_keys,
    rpc_servers,
    model_files,
    watch,
    usage,
    metrics_targets,
)


def create_app(runtime: ServerRuntime, ui_assets: UiAssets | None = None) -> FastAPI:
    """Build the app around a prepared runtime (``await runtime.prepare()`` first).

    ``ui_assets``: the web UI to serve at ``/`` (``ui_assets.ensure_built()``); by default the built
    copy in the package as it is."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tune_for_server()
        raise_open_files_limit()  # two sockets per worker: thousands of workers need more than 1,024
        await runtime.start_controllers()
        try:
            yield
        finally:
            await runtime.stop()

    app = quiet_fastapi(
        title="gpufleet",
        version=__version__,
        lifespan=lifespan,
        description="GPU cluster manager: management API under /api, OpenAI-compatible API under /v1.",
    )
    app.state.runtime = runtime
    settings = runtime.settings
    app.state.login_throttle = LoginThrottle(
        settings.login_failures_per_user, settings.login_failures_per_address, settings.login_lockout
    )
    # Added first, so it runs inside AuthMiddleware: the caller is known when it serves /v1 inference.
    app.add_middleware(GatewayMiddleware, gateway_factory=lambda: runtime.gateway)
    # Inside AuthMiddleware too: anonymous callers get their 401 before any body limit is checked.
    app.add_middleware(BodyLimitMiddleware, api_max_body=int(settings.api_max_body_mib * MiB))
    app.add_middleware(AuthMiddleware, resolver_factory=lambda: runtime.resolver)
    errors.install(app)
    openapi.install(app)  # the document says what the routes answer: error bodies, statuses, credentials
    for module in ROUTERS:
        app.include_router(module.router)
    ui.install(app, ui_assets or built_assets())
    return app
