"""FastAPI dependencies shared by the routes.

Every dependency is ``async def``, even when it awaits nothing: FastAPI runs a plain ``def``
dependency in its thread pool, a thread hop per dependency per request (measured: a tenth of the
server's CPU at 2,000 heartbeating workers), for what is an attribute read.
"""

from __future__ import annotations

from fastapi import Request

from gpufleet.db.session import Database
from gpufleet.server.runtime import ServerRuntime


def runtime_of(request: Request) -> ServerRuntime:
    value: ServerRuntime = request.app.state.runtime
    return value


async def runtime(request: Request) -> ServerRuntime:
    return runtime_of(request)


async def database(request: Request) -> Database:
    return runtime_of(request).db
