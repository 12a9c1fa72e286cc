"""``/api/model-instances``: read by admins and (their own) by workers; state changes by workers."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from gpufleet.db.session import Database
from gpufleet.schemas.instances import InstancePublic, InstanceRelease, InstanceTransition
from gpufleet.server.auth import ADMIN_OR_WORKER, WORKER, allow
from gpufleet.server.deps import database
from gpufleet.server.principal import Principal
from gpufleet.server.services import instances as instance_service

router = APIRouter(prefix="/api/model-instances", tags=["instances"])
readers = allow(*ADMIN_OR_WORKER)
worker = allow(*WORKER)


@router.get("", response_model=list[InstancePublic])
async def list_instances(
    model_id: int | None = None, principal: Principal = Depends(readers), db: Database = Depends(database)
) -> list[InstancePublic]:
    return await instance_service.list_instances(db, principal, model_id)


@router.get("/{instance_id}", response_model=InstancePublic)
async def get_instance(
    instance_id: int, principal: Principal = Depends(readers), db: Database = Depends(database)
) -> InstancePublic:
    return await instance_service.get_instance(db, principal, instance_id)


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
