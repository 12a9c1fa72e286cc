"""Between the database and the pure scheduler: snapshots from rows, requests from deployments,
and committing a placement with compare-and-swap.

Free memory per device = total − system_reserved − claims of placed gpufleet instances − memory
used by others, where "others" is what the worker reports in use minus what our running
instances claim (never below zero).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gpufleet.common.claims import add_claim
from gpufleet.common.clock import as_utc, utcnow
from gpufleet.db.tables import Model, ModelInstance, Worker
from gpufleet.estimate.gguf import GGUFError
from gpufleet.estimate.loader import load_estimator
from gpufleet.estimate.model_info import ModelInfoError
from gpufleet.estimate.sources import SourceError
from gpufleet.scheduler.framework import Placement, Request
from gpufleet.scheduler.run_config import BackendParameterError, run_config_for
from gpufleet.scheduler.snapshot import ClusterSnapshot, DeviceView, WorkerView
from gpufleet.schemas.states import InstanceState
from gpufleet.server.services import instances as instance_service
from gpufleet.server.services.model_files import ModelFileError, location_of

ESTIMATE_ERRORS = (ModelFileError, GGUFError, ModelInfoError, SourceError, BackendParameterError, OSError)
PLACED = [s.value for s in InstanceState if s not in (InstanceState.PENDING,)]


class CannotEstimate(Exception):
    """The model's memory cannot be estimated (file unreadable, not GGUF, unsupported backend)."""


async def load_snapshot(session: AsyncSession) -> ClusterSnapshot:
    workers = (await session.execute(select(Worker).order_by(Worker.name))).scalars().all()
    rows = (
        await session.execute(
            select(
                ModelInstance.worker_name, ModelInstance.claim, ModelInstance.subordinates, ModelInstance.state
            ).where(ModelInstance.worker_id.is_not(None), ModelInstance.state.in_(PLACED))
        )
    ).all()
    claimed: dict[str, int] = defaultdict(int)
    running: dict[str, int] = defaultdict(int)
    for worker_name, claim, subordinates, state in rows:
        for target in (claimed, running) if state == InstanceState.RUNNING else (claimed,):
            add_claim(target, worker_name, claim)
            for sub in subordinates or []:
                add_claim(target, sub.get("worker_name"), sub.get("claim"))
    return ClusterSnapshot(tuple(_worker_view(w, claimed, running) for w in workers))


def _worker_view(worker: Worker, claimed: dict[str, int], running: dict[str, int]) -> WorkerView:
    reserved = worker.system_reserved or {}
    views = []
    for device in worker.devices:
        others = max(0, device.memory_used - running.get(device.id, 0))
        views.append(
            DeviceView(
                id=device.id,
                worker_id=worker.id,
                worker_name=worker.name,
                index=device.index,
                type=device.type,
                name=device.name,
                memory_total=device.memory_total,
                reserved=int(reserved.get("ram" if device.type == "cpu" else "vram", 0)),
                used_by_others=others,
                claimed=claimed.get(device.id, 0),
                unified_memory=device.unified_memory,
                simulated=device.simulated,
            )
        )
    cpu = next((v for v in views if v.type == "cpu"), None)
    if cpu is None:  # a worker that has not reported its CPU: nothing can go there
        cpu = DeviceView(f"{worker.name}:cpu:0", worker.id, worker.name, 0, "cpu", "CPU", 0, 0, 0, 0)
    gpus = tuple(v for v in views if v.type != "cpu")
    return WorkerView(
        worker.id,
        worker.name,
        worker.state,
        dict(worker.labels),
        gpus,
        cpu,
        arch=str(worker.labels.get("arch", "amd64")),
    )


def spec_request_fields(model: Any) -> dict[str, Any]:
    """Request fields from a deployment (a ``Model`` row or a ``ModelSpec``)."""
    selector = model.gpu_selector
    device_ids = (
        selector.get("device_ids", [])
        if isinstance(selector, dict)
        else (selector.device_ids if selector is not None else [])
    )
    return {
        "backend": str(getattr(model.backend, "value", model.backend) or "llama.cpp"),
        "placement_strategy": str(getattr(model.placement_strategy, "value", model.placement_strategy)),
        "cpu_offloading": bool(model.cpu_offloading),
        "distributed": bool(model.distributed_inference_across_workers),
        "worker_selector": dict(model.worker_selector or {}),
        "gpu_selector": tuple(device_ids),
    }


def estimator_for(model: Any) -> Any:
    """The memoised Estimator of a deployment's GGUF for its run settings. Blocking: call in a thread."""
    backend = getattr(model.backend, "value", model.backend)
    if backend == "vllm":
        raise CannotEstimate(
            "placing vLLM deployments needs the safetensors estimate, which is not built yet; "
            "use backend llama.cpp with a GGUF model"
        )
    source = str(getattr(model.source, "value", model.source))
    try:
        location = location_of(
            source,
            local_path=model.local_path,
            huggingface_repo_id=model.huggingface_repo_id,
            huggingface_filename=model.huggingface_filename,
            modelscope_model_id=model.modelscope_model_id,
            modelscope_file_path=model.modelscope_file_path,
            ollama_library_model_name=model.ollama_library_model_name,
        )
        return load_estimator(location, run_config_for(model.ctx_size, model.backend_parameters or []))
    except ESTIMATE_ERRORS as exc:
        raise CannotEstimate(f"cannot estimate the model's memory: {exc}") from exc


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
    """pending → scheduled, with the placement, as one compare-and-swap (InvalidTransition if it moved)."""
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


def build_request(instance: ModelInstance, model: Model) -> Request:
    return Request(
        instance_id=instance.id,
        instance_name=instance.name,
        estimator=estimator_for(model),
        avoid=avoided_workers(instance),
        **spec_request_fields(model),
    )
