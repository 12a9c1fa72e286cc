"""``/api/model-instances/{id}/rpc-server``: a subordinate worker reports its RPC server for an instance."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from gpufleet.db.session import Database
from gpufleet.schemas.instances import InstancePublic, RpcServerReport
from gpufleet.server.auth import WORKER, allow
from gpufleet.server.deps import database
from gpufleet.server.principal import Principal
from gpufleet.server.services import rpc_servers

router = APIRouter(prefix="/api/model-instances", tags=["instances"])


@router.post("/{instance_id}/rpc-server", response_model=InstancePublic)
async def report_rpc_server(
    instance_id: int,
    body: RpcServerReport,
    principal: Principal = Depends(allow(*WORKER)),
    db: Database = Depends(database),
) -> InstancePublic:
    return await rpc_servers.report_rpc_server(db, principal, instance_id, body)
