"""Placement preview: the real scheduler on the current snapshot, replicas one after another, nothing written."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from gpufleet.db.session import Database
from gpufleet.scheduler.framework import Placement, Request
from gpufleet.scheduler.scheduler import schedule
from gpufleet.schemas.models import ModelSpec
from gpufleet.schemas.preview import PreviewPlacement, PreviewResult, WorkerReason
from gpufleet.server.services import local_paths, scheduling
from gpufleet.server.services.models import check_engine_parameters, resolve_backend


async def preview(db: Database, spec: ModelSpec, model_dirs: Sequence[Path]) -> PreviewResult:
    """``model_dirs``: where ``local_path`` models may come from; a path outside them is refused (422)
    before the server reads anything (``local_paths``)."""
    spec = await asyncio.to_thread(resolve_backend, spec, model_dirs)
    check_engine_parameters(spec)
    async with db.read() as session:
        snapshot = await scheduling.load_snapshot(session)
    try:
        readable = await asyncio.to_thread(local_paths.server_spec, spec, model_dirs)
        estimator = await asyncio.to_thread(scheduling.estimator_for, readable)
    except scheduling.CannotEstimate as exc:
        return PreviewResult(schedulable=False, placements=[], message=str(exc), reasons=[])
    placements: list[PreviewPlacement] = []
    for replica in range(spec.replicas):
        request = Request(
            instance_id=0,
            instance_name=f"{spec.name}-preview-{replica}",
            estimator=estimator,
            **scheduling.spec_request_fields(spec),
        )
        result = schedule(request, snapshot)
        if not isinstance(result, Placement):
            placed = f"{len(placements)}/{spec.replicas} replicas fit; " if spec.replicas > 1 else ""
            return PreviewResult(
                schedulable=False,
                placements=placements,
                message=placed + result.message,
                reasons=[WorkerReason(worker_name=w, reason=r) for w, r in result.reasons],
            )
        data = result.as_json()
        placements.append(
            PreviewPlacement(
                mode=data["mode"],
                worker_name=data["worker_name"],
                device_ids=data["device_ids"],
                claim=data["claim"],
                subordinates=data["subordinates"],
            )
        )
        snapshot = snapshot.with_claim(result.all_claims())
    where = ", ".join(p.worker_name for p in placements)
    message = f"{spec.replicas} replica(s) fit: {where}" if placements else "0 replicas requested"
    return PreviewResult(schedulable=True, placements=placements, message=message, reasons=[])
