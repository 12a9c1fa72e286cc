"""``/api/model-files``: the model files in workers' caches (workers report theirs, admins list them)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from gpufleet.db.session import Database
from gpufleet.schemas.model_files import ModelFilePublic, ModelFileReport
from gpufleet.server.auth import ADMIN, WORKER, allow
from gpufleet.server.deps import database
from gpufleet.server.principal import Principal
from gpufleet.server.services import model_file_records

router = APIRouter(prefix="/api/model-files", tags=["model files"])


@router.get("", response_model=list[ModelFilePublic])
async def list_model_files(
    worker_id: int | None = None, _: Principal = Depends(allow(*ADMIN)), db: Database = Depends(database)
) -> list[ModelFilePublic]:
    return await model_file_records.list_files(db, worker_id)


@router.put("", response_model=ModelFilePublic)
async def report_model_file(
    body: ModelFileReport, principal: Principal = Depends(allow(*WORKER)), db: Database = Depends(database)
) -> ModelFilePublic:
    return await model_file_records.report(db, principal, body)
