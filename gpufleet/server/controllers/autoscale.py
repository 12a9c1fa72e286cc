"""Autoscale controller: steps bounded deployments up under queueing and down when idle.

Every ``TICK`` seconds (leader only) it reads the deployments with replica bounds, their running
instances and their load on every server (``gateway.load``), and applies the step the rules give
(``services.autoscale_rules``) as a compare-and-swap on ``replicas`` with its event
(``services.scaling``); the deployments controller then starts or stops the instance. A step up is
taken only when the new instance fits now (a dry run of the scheduler): queueing on a full
cluster adds nothing that would only wait.

How long requests have been waiting is this controller's own observation (a deployment waiting at
each look since the first), so it restarts from zero on a new leader: a step up comes at most
``SCALE_UP_AFTER`` later than it would have.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path

from sqlalchemy import func, select

from gpufleet.common.clock import utcnow
from gpufleet.db.session import Database
from gpufleet.db.tables import Model, ModelInstance
from gpufleet.scheduler.framework import Placement
from gpufleet.scheduler.scheduler import schedule
from gpufleet.schemas.model_events import ModelEventKind
from gpufleet.schemas.states import InstanceState
from gpufleet.server.controllers.base import Controller
from gpufleet.server.services import scaling, scheduling
from gpufleet.server.services.autoscale_rules import Deployment, Step, decide
from gpufleet.server.services.demand import Load, LoadView
from gpufleet.server.services.scaling import Scaled

logger = logging.getLogger(__name__)

TICK = "tick"


class AutoscaleController(Controller):
    name = "autoscale"
    resync_interval = 1.0  # one look a second: steps are seconds apart by their rules

    def __init__(self, db: Database, load: LoadView, *, model_dirs: Sequence[Path], scaled: Scaled) -> None:
        super().__init__()
        self.db = db
        self.load = load
        self.model_dirs = tuple(model_dirs)
        self.scaled = scaled
        self._waiting_since: dict[int, float] = {}  # deployment id -> first look that saw requests waiting

    async def all_keys(self) -> Iterable[Hashable]:
        return [TICK]

    async def reconcile(self, key: Hashable) -> None:
        async with self.db.read() as session:
            models = list((await session.execute(select(Model).where(Model.min_replicas.is_not(None)))).scalars().all())
            if not models:
                self._waiting_since.clear()
                return
            running = dict(
                (
                    await session.execute(
                        select(ModelInstance.model_id, func.count())
                        .where(
                            ModelInstance.model_id.in_([m.id for m in models]),
                            ModelInstance.state == InstanceState.RUNNING.value,
                        )
                        .group_by(ModelInstance.model_id)
                    )
                ).all()
            )
        loads = await self.load()
        now, tick = utcnow(), time.monotonic()
        for model in models:
            load = loads.get(model.id, Load())
            if load.queued:
                self._waiting_since.setdefault(model.id, tick)
            else:
                self._waiting_since.pop(model.id, None)
            since = self._waiting_since.get(model.id)
            step = decide(
                _deployment(model, running.get(model.id, 0), load, None if since is None else tick - since), now
            )
            if step is None:
                continue
            if step.kind == ModelEventKind.SCALE_UP and not await self._fits(model):
                continue
            if await scaling.scale(self.db, model.id, model.replicas, step.replicas, step.kind, step.why):
                self.scaled(model.name, step.kind)
                logger.info("autoscale: %s: %s to %d: %s", model.name, step.kind.value, step.replicas, step.why)

    async def _fits(self, model: Model) -> bool:
        """Whether one more instance of ``model`` could be placed now (a dry run; nothing is written)."""
        async with self.db.read() as session:
            snapshot = await scheduling.load_snapshot(session)
        probe = ModelInstance(id=0, name=f"{model.name}-probe", placement_backoff={})
        try:
            request = await asyncio.to_thread(scheduling.build_request, probe, model, self.model_dirs)
        except scheduling.CannotEstimate:
            return False
        return isinstance(await asyncio.to_thread(schedule, request, snapshot), Placement)


def _deployment(model: Model, running: int, load: Load, queued_for: float | None) -> Deployment:
    return Deployment(
        model_id=model.id,
        replicas=model.replicas,
        min_replicas=model.min_replicas or 0,
        max_replicas=model.max_replicas or 0,
        idle_timeout=model.idle_timeout,
        running=running,
        in_flight=load.in_flight,
        queued=load.queued,
        queued_for=queued_for,
        busy_at=model.busy_at,
        last_request_at=model.last_request_at,
        scaled_at=model.scaled_at,
        updated_at=model.updated_at,
    )


__all__ = ["AutoscaleController", "Step"]
