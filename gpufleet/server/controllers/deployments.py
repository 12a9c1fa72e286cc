"""Deployments controller: keeps each model's number of instances equal to its ``replicas``.

reconcile(model_id):
- model exists: create ``pending`` instances up to ``replicas``; above it, remove
  the least advanced first (pending, then error, then placed-but-not-running,
  running last; newest first). An instance without a worker is deleted at once;
  one on a worker goes to ``stopping`` and the worker deletes it once its engine
  is stopped.
- model deleted: every instance left with ``model_id`` NULL is removed the same way.
- an instance ``stopping`` on a worker that is not ready is deleted here: no
  worker will come to acknowledge it (a returning worker stops engines it is no
  longer asked to run).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gpufleet.db.session import Database
from gpufleet.db.tables import Model, ModelInstance, Worker
from gpufleet.schemas.events import EventType
from gpufleet.schemas.states import InstanceState, WorkerState
from gpufleet.server.controllers.base import Controller
from gpufleet.server.services import instances as instance_service

ORPHANS = "orphans"  # the key for instances whose deployment was deleted


def worker_key(worker_id: int) -> tuple[str, int]:
    """The key for "a worker went away": finish the stops it can no longer acknowledge."""
    return ("worker", worker_id)


# Lower = removed first when scaling down.
REMOVAL_ORDER = {
    InstanceState.PENDING: 0,
    InstanceState.ERROR: 1,
    InstanceState.UNREACHABLE: 2,
    InstanceState.SCHEDULED: 3,
    InstanceState.DOWNLOADING: 4,
    InstanceState.STARTING: 5,
    InstanceState.RUNNING: 6,
}


class DeploymentsController(Controller):
    name = "deployments"

    def __init__(self, db: Database, resync_interval: float = 60.0) -> None:
        super().__init__()
        self.db = db
        self.resync_interval = resync_interval

    async def all_keys(self) -> Iterable[Hashable]:
        async with self.db.read() as session:
            ids = (await session.execute(select(Model.id))).scalars().all()
        return [*ids, ORPHANS]

    async def reconcile(self, key: Hashable) -> None:
        async with self.db.transaction() as session:
            if key == ORPHANS:
                await self._remove_orphans(session)
                return
            if isinstance(key, tuple):
                stopping = (
                    (
                        await session.execute(
                            select(ModelInstance).where(
                                ModelInstance.worker_id == key[1],
                                ModelInstance.state == InstanceState.STOPPING.value,
                            )
                        )
                    )
                    .scalars()
                    .all()
                )
                await self._finish_abandoned_stops(session, list(stopping))
                return
            assert isinstance(key, int)
            model = await session.get(Model, key)
            if model is None:
                await self._remove_orphans(session)
                return
            instances = (
                (await session.execute(select(ModelInstance).where(ModelInstance.model_id == key))).scalars().all()
            )
            await self._finish_abandoned_stops(session, [i for i in instances if i.state == InstanceState.STOPPING])
            active = [i for i in instances if i.state != InstanceState.STOPPING]
            for _ in range(model.replicas - len(active)):
                row = instance_service.new_pending(session, model.id, model.name)
                await session.flush()
                instance_service.publish(session, row, EventType.ADDED)
            surplus = len(active) - model.replicas
            if surplus > 0:
                victims = sorted(active, key=lambda i: (REMOVAL_ORDER[InstanceState(i.state)], -i.id))[:surplus]
                for victim in victims:
                    await self._remove(session, victim, f"scaled down to {model.replicas} replicas")

    async def _remove_orphans(self, session: AsyncSession) -> None:
        orphans = (await session.execute(select(ModelInstance).where(ModelInstance.model_id.is_(None)))).scalars().all()
        await self._finish_abandoned_stops(session, [i for i in orphans if i.state == InstanceState.STOPPING])
        for row in orphans:
            if row.state != InstanceState.STOPPING:
                await self._remove(session, row, "its model was deleted")

    async def _remove(self, session: AsyncSession, row: ModelInstance, reason: str) -> None:
        if row.worker_id is None:
            await instance_service.forget(session, row)
            return
        await instance_service.transition_and_publish(session, row, InstanceState.STOPPING, f"stopping: {reason}")

    async def _finish_abandoned_stops(self, session: AsyncSession, stopping: list[ModelInstance]) -> None:
        for row in stopping:
            worker = await session.get(Worker, row.worker_id) if row.worker_id is not None else None
            if worker is None or worker.state == WorkerState.NOT_READY.value:
                await instance_service.forget(session, row)
