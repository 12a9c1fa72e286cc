"""The answer to a create or an update says how many replicas can be placed now (finding: 1000 accepted silently).

A deployment may ask for more replicas than the cluster holds: that is allowed (the rest wait,
pending, and are placed as capacity comes), but the person asking is told at once. The count is the
preview's (``services.preview``: the real scheduler on the current snapshot, nothing written) for
the replicas not yet placed, added to those already placed, whose claims the snapshot holds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import func, select

from gpufleet.common.errors import GpufleetError
from gpufleet.db.session import Database
from gpufleet.db.tables import ModelInstance
from gpufleet.schemas.models import ModelPublic, ModelSpec
from gpufleet.schemas.states import InstanceState
from gpufleet.server.services import preview

logger = logging.getLogger(__name__)


async def with_outlook(db: Database, model: ModelPublic, model_dirs: Sequence[Path]) -> ModelPublic:
    """``model`` with ``placeable_replicas`` and, when fewer than ``replicas`` fit, a warning."""
    spec = ModelSpec.model_validate({field: getattr(model, field) for field in ModelSpec.model_fields})
    async with db.read() as session:
        query = select(func.count(ModelInstance.id)).where(
            ModelInstance.model_id == model.id,
            ModelInstance.worker_id.is_not(None),
            ModelInstance.state != InstanceState.STOPPING.value,
        )
        placed = min(spec.replicas, int((await session.execute(query)).scalar_one()))
    missing = spec.replicas - placed
    if missing == 0 and spec.replicas == 0 and (spec.max_replicas or 0) >= 1:
        return await _load_outlook(db, model, spec, model_dirs)
    if missing == 0:
        return model.model_copy(update={"placeable_replicas": spec.replicas, "warnings": []})
    try:
        result = await preview.preview(db, spec.model_copy(update={"replicas": missing}), model_dirs)
    except GpufleetError as exc:  # stored before today's checks: the answer still reports the change made
        logger.info("no placement outlook for %s: %s", model.name, exc.message)
        return model
    fit = placed + len(result.placements)
    warnings = []
    if fit < spec.replicas:
        warnings.append(
            f"only {fit} of {spec.replicas} replicas can be placed now; the other {spec.replicas - fit} "
            f"stay pending until capacity frees up ({result.message})"
        )
    return model.model_copy(update={"placeable_replicas": fit, "warnings": warnings})


async def _load_outlook(db: Database, model: ModelPublic, spec: ModelSpec, model_dirs: Sequence[Path]) -> ModelPublic:
    """An on-demand deployment with nothing loaded: would its first request find room?"""
    try:
        result = await preview.preview(db, spec.model_copy(update={"replicas": 1}), model_dirs)
    except GpufleetError as exc:
        logger.info("no placement outlook for %s: %s", model.name, exc.message)
        return model
    warnings = []
    if not result.placements:
        warnings.append(
            "no instance fits now: a request loads one only after evicting idle on-demand models of lower "
            f"or equal priority, or once capacity frees up ({result.message})"
        )
    return model.model_copy(update={"placeable_replicas": 0, "warnings": warnings})
