"""FastAPI dependencies shared by the routes."""

from __future__ import annotations

from fastapi import Request

from gpufleet.db.session import Database
from gpufleet.server.runtime import ServerRuntime


def runtime(request: Request) -> ServerRuntime:
    value: ServerRuntime = request.app.state.runtime
    return value


def database(request: Request) -> Database:
    return runtime(request).db
