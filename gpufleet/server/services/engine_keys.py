"""An instance's engine API key, for the one worker that runs the instance and nobody else.

Not even an admin reads it: the key exists so that the gateway (which derives it itself, see
``secrets.engine_key``) is the only way in to an engine, with its API keys, limits and usage.
"""

from __future__ import annotations

from gpufleet.common.errors import Forbidden, NotFound
from gpufleet.db.session import Database
from gpufleet.db.tables import ModelInstance
from gpufleet.schemas.instances import EngineKeyPublic
from gpufleet.server import secrets
from gpufleet.server.principal import Principal, PrincipalKind


async def engine_key_for(db: Database, principal: Principal, cluster_token: str, instance_id: int) -> EngineKeyPublic:
    async with db.read() as session:
        row = await session.get(ModelInstance, instance_id)
    if row is None:
        raise NotFound(f"instance {instance_id} does not exist")
    if principal.kind != PrincipalKind.WORKER or row.worker_id != principal.worker_id:
        raise Forbidden(f"instance {row.name} is not assigned to this worker")
    return EngineKeyPublic(api_key=secrets.engine_key(cluster_token, instance_id))
