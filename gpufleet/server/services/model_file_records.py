"""Model files in workers' caches: a worker reports its downloads, admins list them.

One row per (worker, source_key). A report is an upsert: the worker's downloads report their state
again and again (progress, then ready or error), so a lost or repeated report does no harm. The
worker comes from the credential, so a worker can only ever write its own rows.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gpufleet.common.errors import Forbidden
from gpufleet.db.session import Database
from gpufleet.db.tables import ModelFile, Worker
from gpufleet.schemas.model_files import ModelFilePublic, ModelFileReport, ModelFileState
from gpufleet.schemas.models import ModelSource
from gpufleet.server.principal import Principal, PrincipalKind


def to_public(row: ModelFile, worker_name: str) -> ModelFilePublic:
    return ModelFilePublic(
        id=row.id,
        worker_id=row.worker_id,
        worker_name=worker_name,
        source=ModelSource(row.source),
        source_key=row.source_key,
        state=ModelFileState(row.state),
        state_message=row.state_message,
        download_progress=row.download_progress,
        size=row.size,
        resolved_paths=list(row.resolved_paths),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def report(db: Database, principal: Principal, body: ModelFileReport) -> ModelFilePublic:
    """Insert or update the caller's row for ``body.source_key``."""
    if principal.kind != PrincipalKind.WORKER or principal.worker_id is None:
        raise Forbidden("only a worker reports the files in its cache")
    try:
        return await _upsert(db, principal.worker_id, body)
    except IntegrityError:  # the first two reports of one file raced; the row exists now
        return await _upsert(db, principal.worker_id, body)


async def _upsert(db: Database, worker_id: int, body: ModelFileReport) -> ModelFilePublic:
    async with db.transaction() as session:
        row = (
            await session.execute(
                select(ModelFile).where(ModelFile.worker_id == worker_id, ModelFile.source_key == body.source_key)
            )
        ).scalar_one_or_none()
        if row is None:
            row = ModelFile(worker_id=worker_id, source_key=body.source_key)
            session.add(row)
        row.source = body.source.value
        row.state = body.state.value
        row.state_message = body.state_message
        row.download_progress = body.download_progress
        row.size = body.size
        row.resolved_paths = body.resolved_paths
        await session.flush()
        worker_name = (await session.execute(select(Worker.name).where(Worker.id == worker_id))).scalar_one()
        return to_public(row, worker_name)


async def list_files(db: Database, worker_id: int | None = None) -> list[ModelFilePublic]:
    query = select(ModelFile, Worker.name).join(Worker, Worker.id == ModelFile.worker_id)
    if worker_id is not None:
        query = query.where(ModelFile.worker_id == worker_id)
    async with db.read() as session:
        rows = (await session.execute(query.order_by(Worker.name, ModelFile.source_key))).all()
    return [to_public(row, name) for row, name in rows]
