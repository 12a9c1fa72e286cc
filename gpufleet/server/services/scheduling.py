"""Between the database and the pure scheduler: snapshots from rows, requests from deployments,
and committing a placement with compare-and-swap.

Free memory per device = total − system_reserved − claims of placed gpufleet instances − memory
used by others, where "others" is what the worker reports in use minus what our running
instances claim (never below zero).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gpufleet.common.clock import as_utc, utcnow
from gpufleet.common.errors import InvalidTransition
from gpufleet.common.resources import cpu_device_id, held_by_instance
from gpufleet.db.tables import Device, Model, ModelInstance, Worker
from gpufleet.engines import CannotEstimate, backend_name, engine_for
from gpufleet.estimate.memory import Estimator
from gpufleet.estimate.vllm_model import VllmModel
from gpufleet.scheduler.framework import Placement, Request
from gpufleet.scheduler.snapshot import ClusterSnapshot, DeviceView, WorkerView
from gpufleet.schemas.models import ModelSpec
from gpufleet.schemas.states import InstanceState
from gpufleet.server.services import instances as instance_service
from gpufleet.server.services.local_paths import LocalPathNotAllowed, confined_spec
from gpufleet.server.services.models import spec_of

__all__ = ["CannotEstimate", "build_request", "commit", "estimator_for", "load_pending", "load_snapshot"]

PLACED = [s.value for s in InstanceState if s not in (InstanceState.PENDING,)]


async def load_snapshot(session: AsyncSession) -> ClusterSnapshot:
    """The cluster as of now: plain rows (no ORM objects: 10,000 workers are 90,000 devices), turned into
    the immutable snapshot in a thread, so the event loop never waits for it."""
    workers = (
        await session.execute(
            select(Worker.id, Worker.name, Worker.state, Worker.labels, Worker.system_reserved).order_by(Worker.name)
        )
    ).all()
    devices = (
        await session.execute(
            select(
                Device.id,
                Device.worker_id,
                Device.index,
                Device.type,
                Device.name,
                Device.memory_total,
                Device.memory_used,
                Device.unified_memory,
                Device.simulated,
            ).order_by(Device.worker_id, Device.sort_key)
        )
    ).all()
    claims = (
        await session.execute(
            select(
                ModelInstance.worker_name, ModelInstance.claim, ModelInstance.subordinates, ModelInstance.state
            ).where(ModelInstance.worker_id.is_not(None), ModelInstance.state.in_(PLACED))
        )
    ).all()
    return await asyncio.to_thread(_snapshot, workers, devices, claims)  # rows are plain, immutable data


Rows = Sequence[Any]  # result rows, unpacked by position


def _snapshot(workers: Rows, devices: Rows, claims: Rows) -> ClusterSnapshot:
    claimed: dict[str, int] = defaultdict(int)
    running: dict[str, int] = defaultdict(int)
    for worker_name, claim, subordinates, state in claims:
        for target in (claimed, running) if state == InstanceState.RUNNING else (claimed,):
            for holder, resources in held_by_instance(worker_name, claim, subordinates):
                for device, amount in resources.by_device(holder).items():
                    target[device] += amount
    by_worker: dict[int, list[Any]] = defaultdict(list)
    for row in devices:
        by_worker[row[1]].append(row)  # (id, worker_id, …)
    return ClusterSnapshot(tuple(_worker_view(w, by_worker[w[0]], claimed, running) for w in workers))


def _worker_view(worker: Any, devices: Rows, claimed: dict[str, int], running: dict[str, int]) -> WorkerView:
    worker_id, worker_name, state, labels, reserved = worker
    labels, reserved = dict(labels or {}), reserved or {}
    views = []
    for device_id, _, index, kind, name, total, used, unified, simulated in devices:
        views.append(
            DeviceView(
                id=device_id,
                worker_id=worker_id,
                worker_name=worker_name,
                index=index,
                type=kind,
                name=name,
                memory_total=total,
                reserved=int(reserved.get("ram" if kind == "cpu" else "vram", 0)),
                used_by_others=max(0, used - running.get(device_id, 0)),
                claimed=claimed.get(device_id, 0),
                unified_memory=unified,
                simulated=simulated,
            )
        )
    cpu = next((v for v in views if v.type == "cpu"), None)
    if cpu is None:  # a worker that has not reported its CPU: nothing can go there
        cpu = DeviceView(cpu_device_id(worker_name), worker_id, worker_name, 0, "cpu", "CPU", 0, 0, 0, 0)
    gpus = tuple(v for v in views if v.type != "cpu")
    return WorkerView(worker_id, worker_name, state, labels, gpus, cpu, arch=str(labels.get("arch", "amd64")))


def spec_request_fields(spec: ModelSpec) -> dict[str, Any]:
    """The placement rules of a deployment, as ``Request`` fields."""
    return {
        "backend": backend_name(spec.backend),
        "placement_strategy": spec.placement_strategy.value,
        "cpu_offloading": spec.cpu_offloading,
        "distributed": spec.distributed_inference_across_workers,
        "worker_selector": dict(spec.worker_selector),
        "gpu_selector": tuple(spec.gpu_selector.device_ids if spec.gpu_selector else ()),
    }


def estimator_for(spec: ModelSpec) -> Estimator | VllmModel:
    """The deployment's engine's memoised estimator for its model and run settings. Blocking: call in a thread."""
    return engine_for(spec.backend).estimator(spec)


def stored_spec(model: Model) -> ModelSpec:
    """A stored deployment as the spec it was validated as; ``CannotEstimate`` if it no longer validates."""
    try:
        return ModelSpec.model_validate(spec_of(model))
    except ValidationError as exc:
        raise CannotEstimate(f"the stored deployment is no longer valid: {exc.errors()[0]['msg']}") from exc


def avoided_workers(instance: ModelInstance, now: datetime | None = None) -> dict[str, str]:
    """Workers this instance must avoid for now (its engine kept failing there): name → why."""
    now = now or utcnow()
    result = {}
    for name, entry in (instance.placement_backoff or {}).items():
        until = datetime.fromisoformat(entry["until"])
        if as_utc(until) > now:
            result[name] = f"{entry.get('reason', 'engine failures')} (until {until:%H:%M:%S} UTC)"
    return result


async def commit(session: AsyncSession, instance: ModelInstance, placement: Placement) -> ModelInstance:
    """pending → scheduled, with the placement, as one compare-and-swap (InvalidTransition if it moved,
    or if a worker it names was renamed or changed state since the snapshot it was decided on)."""
    await _check_workers(session, placement)
    data = placement.as_json()
    claim = {**data["claim"], "mode": data["mode"]}
    return await instance_service.transition_and_publish(
        session,
        instance,
        InstanceState.SCHEDULED,
        f"scheduled: {placement.describe()}",
        worker_id=placement.worker.id,
        worker_name=placement.worker.name,
        device_ids=list(placement.device_ids),
        claim=claim,
        subordinates=data["subordinates"],
    )


async def _check_workers(session: AsyncSession, placement: Placement) -> None:
    """The placement's workers as the snapshot saw them, read locked (PostgreSQL: a rename commits
    before or after this transaction, never beside it)."""
    expected: dict[int, tuple[str, str | None]] = {placement.worker.id: (placement.worker.name, placement.worker.state)}
    for part in placement.subordinates:
        expected.setdefault(part.worker_id, (part.worker_name, None))
    rows = (
        await session.execute(
            select(Worker.id, Worker.name, Worker.state).where(Worker.id.in_(expected)).with_for_update()
        )
    ).all()
    now = {worker_id: (name, state) for worker_id, name, state in rows}
    for worker_id, (name, state) in expected.items():
        current = now.get(worker_id)
        if current is None or current[0] != name or (state is not None and current[1] != state):
            seen = "gone" if current is None else f"now {current[0]!r}, {current[1]}"
            raise InvalidTransition(f"worker {name!r} changed since the placement was decided ({seen})")


def pending_models(rows: list[ModelInstance]) -> set[int]:
    return {row.model_id for row in rows if row.model_id is not None}


async def load_pending(session: AsyncSession) -> tuple[list[ModelInstance], dict[int, Model]]:
    rows = list(
        (
            await session.execute(
                select(ModelInstance)
                .where(ModelInstance.state == InstanceState.PENDING.value)
                .order_by(ModelInstance.id)
            )
        )
        .scalars()
        .all()
    )
    ids = pending_models(rows)
    models = {m.id: m for m in (await session.execute(select(Model).where(Model.id.in_(ids)))).scalars().all()}
    return rows, models


def build_request(instance: ModelInstance, model: Model, model_dirs: Sequence[Path]) -> Request:
    """Blocking (the estimate reads the model's header): call in a thread.

    A ``local_path`` is read only inside ``model_dirs``, checked again here: a symlink may have been
    re-pointed, or the allowed directories changed, since the deployment was saved."""
    try:
        spec = confined_spec(stored_spec(model), model_dirs)
    except LocalPathNotAllowed as exc:
        raise CannotEstimate(exc.message) from exc
    return Request(
        instance_id=instance.id,
        instance_name=instance.name,
        estimator=estimator_for(spec),
        avoid=avoided_workers(instance),
        **spec_request_fields(spec),
    )
