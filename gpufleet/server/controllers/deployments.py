"""Deployments controller: keeps each model's instances at ``replicas``, all of its current spec.

reconcile(model_id):
- model exists: ``rollout.decide`` says which instances to create and which to remove, from the
  rows alone: up to ``replicas`` of the current spec fingerprint, scale-down least advanced first,
  and after a spec change a rolling replacement (a new instance runs before an old one stops; see
  ``services/rollout.py``). When it asks whether the surge instance fits, ``services.surge``
  answers outside the write transaction and the decision is made again with the answer.
  An instance without a worker is deleted at once; one on a worker goes to ``stopping`` and the
  worker deletes it once its engine is stopped.
- model deleted: every instance left with ``model_id`` NULL is removed the same way.
- an instance ``stopping`` on a worker that is not ready is deleted here: no
  worker will come to acknowledge it (a returning worker stops engines it is no
  longer asked to run).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gpufleet.db.session import Database
from gpufleet.db.tables import Model, ModelInstance, Worker
from gpufleet.schemas.events import Event, EventKind, EventType
from gpufleet.schemas.states import InstanceState, WorkerState
from gpufleet.server.controllers.base import Controller
from gpufleet.server.services import instances as instance_service
from gpufleet.server.services import surge
from gpufleet.server.services.rollout import Capacity, Decision, Replica, decide

ORPHANS = "orphans"  # the key for instances whose deployment was deleted

# Instance states whose arrival can change a deployment's decision: a new instance running (an old
# one may stop), an old one failing (replace it now), one waiting (does it fit?). Progress through
# scheduled/downloading/starting changes nothing, so those frequent writes wake nobody.
WAKING_STATES = frozenset(
    {InstanceState.PENDING, InstanceState.RUNNING, InstanceState.ERROR, InstanceState.UNREACHABLE}
)


def deployment_key(event: Event) -> Hashable | None:
    """The deployments-controller key an instance event should enqueue, if any."""
    if event.kind != EventKind.INSTANCES or not event.object:
        return None
    model_id = event.object.get("model_id")  # an int, or None once the deployment is deleted
    if event.type == EventType.DELETED:
        return model_id if isinstance(model_id, int) else ORPHANS
    if isinstance(model_id, int) and event.object.get("state") in WAKING_STATES:
        return model_id
    return None


def worker_key(worker_id: int) -> tuple[str, int]:
    """The key for "a worker went away": finish the stops it can no longer acknowledge."""
    return ("worker", worker_id)


class DeploymentsController(Controller):
    name = "deployments"

    def __init__(self, db: Database, resync_interval: float = 60.0, *, model_dirs: Sequence[Path]) -> None:
        super().__init__()
        self.db = db
        self.resync_interval = resync_interval
        self.model_dirs = tuple(model_dirs)  # where local_path models may be read, to answer surge questions

    async def all_keys(self) -> Iterable[Hashable]:
        async with self.db.read() as session:
            ids = (await session.execute(select(Model.id))).scalars().all()
        return [*ids, ORPHANS]

    async def reconcile(self, key: Hashable) -> None:
        if isinstance(key, int):
            await self._reconcile_model(key)
            return
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
            raise TypeError(f"unknown deployments key {key!r}")

    async def _reconcile_model(self, model_id: int) -> None:
        """Decide and apply; at most twice, the second time with the capacity question answered."""
        capacity: Capacity | None = None
        while True:
            async with self.db.transaction() as session:
                model = await session.get(Model, model_id)
                if model is None:
                    await self._remove_orphans(session)
                    return
                rows = list(
                    (await session.execute(select(ModelInstance).where(ModelInstance.model_id == model_id)))
                    .scalars()
                    .all()
                )
                forgotten = await self._finish_abandoned_stops(
                    session, [i for i in rows if i.state == InstanceState.STOPPING]
                )
                rows = [r for r in rows if r.id not in forgotten]
                replicas = [Replica(r.id, r.name, InstanceState(r.state), r.spec_hash == model.spec_hash) for r in rows]
                decision = decide(model.replicas, replicas, capacity)
                if decision.question is None or capacity is not None:
                    await self._apply(session, model, {r.id: r for r in rows}, decision)
                    return
            # A question comes with nothing to apply; it is answered outside the write transaction.
            capacity = await surge.answer(self.db, decision.question, self.model_dirs)

    async def _apply(
        self, session: AsyncSession, model: Model, rows: dict[int, ModelInstance], decision: Decision
    ) -> None:
        for removal in decision.remove:
            await self._remove(session, rows[removal.replica.id], removal.reason)
        for message in decision.create:
            row = instance_service.new_pending(session, model.id, model.name, model.spec_hash, message)
            await session.flush()
            instance_service.publish(session, row, EventType.ADDED)

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

    async def _finish_abandoned_stops(self, session: AsyncSession, stopping: list[ModelInstance]) -> set[int]:
        """Delete stops no worker will acknowledge; returns the ids deleted."""
        forgotten = set()
        for row in stopping:
            worker = await session.get(Worker, row.worker_id) if row.worker_id is not None else None
            if worker is None or worker.state == WorkerState.NOT_READY.value:
                forgotten.add(row.id)
                await instance_service.forget(session, row)
        return forgotten
