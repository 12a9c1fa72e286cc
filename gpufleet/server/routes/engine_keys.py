"""``GET /api/model-instances/{id}/engine-key``: the worker running an instance asks for its engine's key."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from gpufleet.schemas.instances import EngineKeyPublic
from gpufleet.server.auth import WORKER, allow
from gpufleet.server.deps import runtime
from gpufleet.server.principal import Principal
from gpufleet.server.runtime import ServerRuntime
from gpufleet.server.services.engine_keys import engine_key_for

router = APIRouter(prefix="/api/model-instances", tags=["instances"])


@router.get("/{instance_id}/engine-key", response_model=EngineKeyPublic)
async def engine_key(
    instance_id: int, principal: Principal = Depends(allow(*WORKER)), server: ServerRuntime = Depends(runtime)
) -> EngineKeyPublic:
    """Only the instance's main worker (its own credential); everyone else gets 403."""
    return await engine_key_for(server.db, principal, server.cluster_token, instance_id)
