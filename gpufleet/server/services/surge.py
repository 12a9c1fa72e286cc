"""Answering the roll's capacity question: does the surge instance fit, or only in place of an old one?

The pure scheduler is run on the current snapshot, and again on snapshots where one outdated
instance's claims are released, in the order the question gives. Nothing is written: the
deployments controller decides (``services.rollout``) and the scheduling controller places.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

from gpufleet.common.resources import held_by_instance, total_by_device
from gpufleet.db.session import Database
from gpufleet.db.tables import Model, ModelInstance
from gpufleet.scheduler.framework import Placement
from gpufleet.scheduler.scheduler import schedule
from gpufleet.schemas.states import InstanceState
from gpufleet.server.services import scheduling
from gpufleet.server.services.rollout import Capacity, CapacityQuestion

logger = logging.getLogger(__name__)


async def answer(db: Database, question: CapacityQuestion, model_dirs: Sequence[Path]) -> Capacity:
    """Which outdated instance, released, would let ``question.pending`` be placed (None: no need, or no use).

    ``model_dirs``: where a ``local_path`` model may be read (``Settings.model_dirs``)."""
    nothing = Capacity(question.pending.id, freed_by=None)
    async with db.read() as session:
        pending = await session.get(ModelInstance, question.pending.id)
        if pending is None or pending.state != InstanceState.PENDING or pending.model_id is None:
            return nothing  # placed or gone meanwhile: the next reconcile sees it
        model = await session.get(Model, pending.model_id)
        if model is None:
            return nothing
        outdated = [row for r in question.outdated if (row := await session.get(ModelInstance, r.id)) is not None]
        snapshot = await scheduling.load_snapshot(session)
    try:
        request = await asyncio.to_thread(scheduling.build_request, pending, model, model_dirs)
    except scheduling.CannotEstimate as exc:
        logger.info("%s cannot be estimated (%s): no old instance is stopped to make room for it", pending.name, exc)
        return nothing
    if isinstance(schedule(request, snapshot), Placement):
        return nothing  # it fits: the scheduler places it
    for old in outdated:
        held = total_by_device(held_by_instance(old.worker_name, old.claim, old.subordinates))
        released = snapshot.with_claim({device: -amount for device, amount in held.items()})
        if isinstance(schedule(request, released), Placement):
            return Capacity(question.pending.id, freed_by=old.id)
    return nothing
