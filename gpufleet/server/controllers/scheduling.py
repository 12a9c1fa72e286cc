"""Scheduling controller: places pending instances, one decision at a time, as soon as capacity changes.

Level-triggered with a single key: every event that can make room or add work (an instance
pending, an instance gone or moved, a worker joining or becoming ready, labels or a deployment
changing) enqueues ``PENDING``; ``reconcile`` reads every pending instance and one snapshot, places
them in order, carrying each claim into the snapshot for the next. Each placement is a
compare-and-swap on the instance, so two servers can never both place it. A periodic resync is
only a safety net.

An instance that fits nowhere may have room made for it by evicting idle on-demand instances
(``room.py``): only when the estimator says it then fits, and never a busy or higher-priority one.

Only the leader of the servers sharing the database runs it (``server/leader.py``), and its commits
are fenced: a leader that lost the lock while paused cannot commit a placement decided on a stale
snapshot next to the new leader's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path

from gpufleet.common.errors import InvalidTransition, NotFound
from gpufleet.db.session import Database
from gpufleet.db.tables import ModelInstance
from gpufleet.scheduler.framework import Placement
from gpufleet.scheduler.scheduler import schedule
from gpufleet.schemas.states import InstanceState
from gpufleet.server.controllers.base import Controller
from gpufleet.server.controllers.room import RoomForOne
from gpufleet.server.services import instances as instance_service
from gpufleet.server.services import scheduling
from gpufleet.server.services.demand import LoadView
from gpufleet.server.services.scaling import Scaled

logger = logging.getLogger(__name__)

PENDING = "pending"


class SchedulingController(Controller):
    name = "scheduler"

    def __init__(
        self,
        db: Database,
        resync_interval: float = 60.0,
        *,
        model_dirs: Sequence[Path],
        load: LoadView | None = None,
        scaled: Scaled | None = None,
    ) -> None:
        """``load``: the gateways' load per deployment; without it nothing is ever evicted.
        ``scaled``: told of each eviction (metrics)."""
        super().__init__()
        self.db = db
        self.load = load
        self.scaled = scaled
        self.resync_interval = resync_interval
        self.model_dirs = tuple(model_dirs)  # where local_path models may be read (Settings.model_dirs)
        self.decisions = 0
        self.last_decision_seconds = 0.0

    async def all_keys(self) -> Iterable[Hashable]:
        return [PENDING]

    async def reconcile(self, key: Hashable) -> None:
        async with self.db.read() as session:
            pending, models = await scheduling.load_pending(session)
            if not pending:
                return
            snapshot = await scheduling.load_snapshot(session)
        room = RoomForOne(self.db, self.load, self.scaled) if self.load is not None else None
        for instance in pending:
            model = models.get(instance.model_id) if instance.model_id is not None else None
            if model is None:
                continue  # its deployment is gone: the deployments controller removes it
            started = time.perf_counter()
            try:
                # In a thread with the estimate: thousands of workers make a decision take milliseconds,
                # which the event loop (heartbeats, the API) must not wait for. Snapshots are immutable.
                request = await asyncio.to_thread(scheduling.build_request, instance, model, self.model_dirs)
                result = await asyncio.to_thread(schedule, request, snapshot)
            except scheduling.CannotEstimate as exc:
                await self._say(instance, str(exc))
                continue
            self.decisions += 1
            self.last_decision_seconds = time.perf_counter() - started
            if isinstance(result, Placement):
                if await self._commit(instance, result):
                    snapshot = snapshot.with_claim(result.all_claims())
            elif room is not None:
                await self._say(instance, await room.make(instance, model, request, snapshot, result.message))
            else:
                await self._say(instance, result.message)

    async def _commit(self, instance: ModelInstance, placement: Placement) -> bool:
        try:
            async with self.db.transaction() as session:
                await scheduling.commit(session, instance, placement)
        except (InvalidTransition, NotFound) as exc:
            logger.info("instance %s moved while being placed (%s); it will be looked at again", instance.name, exc)
            return False
        logger.info("placed %s: %s", instance.name, placement.describe())
        return True

    async def _say(self, instance: ModelInstance, message: str) -> None:
        """Keep the pending instance's message current (written only when it changes)."""
        if instance.state_message == message:
            return
        try:
            async with self.db.transaction() as session:
                await instance_service.transition_and_publish(session, instance, InstanceState.PENDING, message)
        except (InvalidTransition, NotFound):
            return
