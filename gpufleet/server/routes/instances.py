"""``/api/model-instances``: read by admins and (their own) by workers; state changes by workers.

``GET /{id}/logs`` streams the engine's log from the instance's main worker (``text/plain``), to
whoever may read the instance. ``POST /{id}/restart`` (admins) sends a placed instance back to
``pending``: its worker stops the engine and the scheduler places it anew.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from gpufleet.db.session import Database
from gpufleet.schemas.instances import InstancePublic, InstanceRelease, InstanceTransition
from gpufleet.schemas.logs import LOG_TAIL_DEFAULT, LOG_TAIL_MAX
from gpufleet.schemas.pages import Page
from gpufleet.server.auth import ADMIN, ADMIN_OR_WORKER, WORKER, allow
from gpufleet.server.deps import database, runtime
from gpufleet.server.listing import Listing, answer
from gpufleet.server.principal import Principal
from gpufleet.server.runtime import ServerRuntime
from gpufleet.server.services import instance_logs
from gpufleet.server.services import instances as instance_service

router = APIRouter(prefix="/api/model-instances", tags=["instances"])
readers = allow(*ADMIN_OR_WORKER)
worker = allow(*WORKER)
admin = allow(*ADMIN)


@router.get("", response_model=list[InstancePublic] | Page[InstancePublic])
async def list_instances(
    params: Listing,
    model_id: int | None = None,
    principal: Principal = Depends(readers),
    db: Database = Depends(database),
) -> list[InstancePublic] | Page[InstancePublic]:
    """Every instance; with ``limit``, one page of them (``state``, ``q`` filter)."""
    items, total = await instance_service.list_instances(db, principal, model_id, params)
    return answer(params, items, total)


@router.get("/{instance_id}", response_model=InstancePublic)
async def get_instance(
    instance_id: int, principal: Principal = Depends(readers), db: Database = Depends(database)
) -> InstancePublic:
    return await instance_service.get_instance(db, principal, instance_id)


@router.get(
    "/{instance_id}/logs",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "the engine's log, as it is written"}},
)
async def logs(
    instance_id: int,
    tail: Annotated[int, Query(ge=0, le=LOG_TAIL_MAX, description="lines from the end")] = LOG_TAIL_DEFAULT,
    follow: Annotated[bool, Query(description="keep streaming what the engine appends")] = False,
    principal: Principal = Depends(readers),
    server: ServerRuntime = Depends(runtime),
) -> StreamingResponse:
    body = await instance_logs.open_log(
        server.db, server.worker_calls, principal, instance_id, tail=tail, follow=follow
    )
    return StreamingResponse(
        body,
        media_type="text/plain; charset=utf-8",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},  # let proxies pass lines on at once
    )


@router.post("/{instance_id}/restart", response_model=InstancePublic)
async def restart(
    instance_id: int, principal: Principal = Depends(admin), db: Database = Depends(database)
) -> InstancePublic:
    """Stop the instance's engine and place it again (back to ``pending``, "restarted by <user>")."""
    return await instance_service.restart(db, principal, instance_id)


@router.post("/{instance_id}/transition", response_model=InstancePublic)
async def transition(
    instance_id: int,
    body: InstanceTransition,
    principal: Principal = Depends(worker),
    db: Database = Depends(database),
) -> InstancePublic:
    return await instance_service.worker_transition(db, principal, instance_id, body)


@router.post("/{instance_id}/release", status_code=204)
async def release(
    instance_id: int,
    body: InstanceRelease,
    principal: Principal = Depends(worker),
    db: Database = Depends(database),
) -> None:
    await instance_service.worker_release(db, principal, instance_id, body.expected_version, body.reason, body.failed)
