"""``/api/models``: deployments. Admins change them; users and workers may read them."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from gpufleet.db.session import Database
from gpufleet.schemas.model_events import ModelEventPublic
from gpufleet.schemas.models import ModelCreate, ModelPublic, ModelUpdate
from gpufleet.schemas.pages import Page
from gpufleet.schemas.preview import PreviewResult
from gpufleet.server.auth import ADMIN, USERS, WORKER, allow
from gpufleet.server.deps import database, runtime
from gpufleet.server.listing import Listing, answer
from gpufleet.server.principal import Principal
from gpufleet.server.runtime import ServerRuntime
from gpufleet.server.services import model_events as model_event_service
from gpufleet.server.services import models as model_service
from gpufleet.server.services import placeable
from gpufleet.server.services import preview as preview_service

router = APIRouter(prefix="/api/models", tags=["models"])
admin = allow(*ADMIN)
readers = allow(*USERS, *WORKER)
users = allow(*USERS)


@router.get("", response_model=list[ModelPublic] | Page[ModelPublic])
async def list_models(
    params: Listing, _: Principal = Depends(readers), server: ServerRuntime = Depends(runtime)
) -> list[ModelPublic] | Page[ModelPublic]:
    """Every deployment; with ``limit``, one page of them (``q`` on the name)."""
    queued = await server.gateway.load.queued_everywhere()
    items, total = await model_service.list_models(server.db, params, queued)
    return answer(params, items, total)


@router.post("", response_model=ModelPublic, status_code=201)
async def create_model(
    body: ModelCreate, _: Principal = Depends(admin), server: ServerRuntime = Depends(runtime)
) -> ModelPublic:
    """Creates the deployment; the answer says how many replicas can be placed now (``placeable_replicas``)."""
    created = await model_service.create_model(server.db, body, model_dirs=server.settings.model_dirs)
    return await placeable.with_outlook(server.db, created, server.settings.model_dirs)


@router.post("/preview", response_model=PreviewResult)
async def preview_model(
    body: ModelCreate, _: Principal = Depends(admin), server: ServerRuntime = Depends(runtime)
) -> PreviewResult:
    """Where the deployment's replicas would be placed now; creates nothing (200 also when nothing fits)."""
    return await preview_service.preview(server.db, body, server.settings.model_dirs)


@router.get("/{model_id}", response_model=ModelPublic)
async def get_model(
    model_id: int, _: Principal = Depends(readers), server: ServerRuntime = Depends(runtime)
) -> ModelPublic:
    return await model_service.get_model(server.db, model_id, await server.gateway.load.queued_everywhere())


@router.get("/{model_id}/events", response_model=list[ModelEventPublic])
async def model_events(
    model_id: int, _: Principal = Depends(users), db: Database = Depends(database)
) -> list[ModelEventPublic]:
    """What gpufleet did to the deployment on its own, newest first: loads, unloads, scaling, evictions."""
    return await model_event_service.list_events(db, model_id)


@router.patch("/{model_id}", response_model=ModelPublic)
async def update_model(
    model_id: int, body: ModelUpdate, _: Principal = Depends(admin), server: ServerRuntime = Depends(runtime)
) -> ModelPublic:
    updated = await model_service.update_model(server.db, model_id, body, model_dirs=server.settings.model_dirs)
    return await placeable.with_outlook(server.db, updated, server.settings.model_dirs)


@router.delete("/{model_id}", status_code=204)
async def delete_model(model_id: int, _: Principal = Depends(admin), db: Database = Depends(database)) -> None:
    await model_service.delete_model(db, model_id)
