"""Making room for a pending instance that fits nowhere, by evicting idle on-demand instances.

One ``RoomForOne`` per scheduling round: it reads the candidates (``services.eviction``) once,
the first time an instance does not fit, and keeps them current as it evicts. The plan is pure
(``scheduler.eviction.plan_eviction``: evict only when the estimator says the instance then
fits); the commit stops the victims and lowers their deployments' targets in one transaction, after
the load is read again (a request that arrived meanwhile keeps its instance). The pending instance
is placed by a later round, once the victims' workers have stopped them and their memory is free.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from gpufleet.common.errors import InvalidTransition, NotFound
from gpufleet.db.session import Database
from gpufleet.db.tables import Model, ModelInstance
from gpufleet.scheduler.eviction import Candidate, describe_eviction, plan_eviction
from gpufleet.scheduler.framework import Request
from gpufleet.scheduler.snapshot import ClusterSnapshot
from gpufleet.schemas.model_events import ModelEventKind
from gpufleet.server.services import eviction
from gpufleet.server.services.demand import Load, LoadView
from gpufleet.server.services.scaling import Scaled

logger = logging.getLogger(__name__)


class RoomForOne:
    def __init__(self, db: Database, load: LoadView, scaled: Scaled | None) -> None:
        self.db = db
        self.load = load
        self.scaled = scaled
        self._candidates: list[Candidate] | None = None
        self._stopping: list[Mapping[str, int]] = []

    async def make(
        self, instance: ModelInstance, model: Model, request: Request, snapshot: ClusterSnapshot, why: str
    ) -> str:
        """Evict what the plan says for ``instance`` (which does not fit: ``why``); its new message."""
        if self._candidates is None:
            loads = await self.load()
            async with self.db.read() as session:
                self._candidates, self._stopping = await eviction.load_room(session, loads)
        eligible = eviction.eligible(self._candidates, model)
        if not eligible and not self._stopping:
            return why  # nothing could make room: the scheduler's reason alone
        plan = await asyncio.to_thread(plan_eviction, request, snapshot, model.priority, eligible, self._stopping)
        if plan.wait:
            return f"waiting for stopping instances to free their memory, then it fits ({why})"
        if not plan.victims:
            return f"{why}; {plan.reason}" if plan.reason and eligible else why
        loads = await self.load()  # again: a request that arrived since keeps its instance
        if any(loads.get(v.model_id, Load()).any for v in plan.victims):
            return f"{why}; an instance that could make room has just received a request"
        victims = [(v, describe_eviction(instance.name, model.name, model.priority, v)) for v in plan.victims]
        try:
            async with self.db.transaction() as session:
                await eviction.commit(session, instance, model, victims)
        except (InvalidTransition, NotFound) as exc:
            logger.info("eviction for %s not made (%s); it is looked at again", instance.name, exc)
            self._candidates = None
            return why
        for victim in plan.victims:
            self._candidates.remove(victim)
            self._stopping.append(victim.held)
            if self.scaled is not None:
                self.scaled(victim.model_name, ModelEventKind.EVICTED)
        if self.scaled is not None:
            self.scaled(model.name, ModelEventKind.EVICT)
        names = ", ".join(f"{v.instance_name} (model {v.model_name})" for v in plan.victims)
        return f"evicting {names} to make room; it is placed once they have stopped ({why})"
