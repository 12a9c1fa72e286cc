"""The record of what gpufleet did to a deployment on its own: loads, unloads, scaling, evictions.

Written in the same transaction as the change it explains, so an event exists exactly when its
change was committed. Only the newest ``KEPT`` per deployment are kept (older ones are pruned as
new ones arrive); they go with the deployment when it is deleted.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from gpufleet.common.errors import NotFound
from gpufleet.db.session import Database
from gpufleet.db.tables import Model, ModelEvent
from gpufleet.schemas.model_events import ModelEventKind, ModelEventPublic

logger = logging.getLogger(__name__)

KEPT = 200  # events kept per deployment


async def record(session: AsyncSession, model_id: int, kind: ModelEventKind, message: str) -> None:
    """Add an event (and log it: the server log tells the same story)."""
    session.add(ModelEvent(model_id=model_id, kind=kind.value, message=message))
    logger.info("model %s: %s: %s", model_id, kind.value, message)
    cutoff = (
        await session.execute(
            select(ModelEvent.id)
            .where(ModelEvent.model_id == model_id)
            .order_by(ModelEvent.id.desc())
            .offset(KEPT - 1)
            .limit(1)
        )
    ).scalar_one_or_none()
    if cutoff is not None:
        await session.execute(delete(ModelEvent).where(ModelEvent.model_id == model_id, ModelEvent.id < cutoff))


async def list_events(db: Database, model_id: int, limit: int = KEPT) -> list[ModelEventPublic]:
    """The deployment's events, newest first; 404 if it does not exist."""
    async with db.read() as session:
        if await session.get(Model, model_id) is None:
            raise NotFound(f"model {model_id} does not exist")
        rows = (
            (
                await session.execute(
                    select(ModelEvent)
                    .where(ModelEvent.model_id == model_id)
                    .order_by(ModelEvent.id.desc())
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )
    return [ModelEventPublic.model_validate(row, from_attributes=True) for row in rows]
