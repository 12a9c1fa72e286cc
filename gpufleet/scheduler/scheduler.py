"""One placement decision: filter → candidates (first kind that yields any) → score → best, or why not.

::

    request, snapshot
        │
        ▼
    filters, all workers at once ── rejected workers: reason asked ──────────┐
        │ (ready · worker_selector · gpu_selector · backend · back-off)       │ only if nothing fits
        ▼ a boolean per worker                                                │
    candidate kinds, in order, stop at the first with any placement           │
        single_gpu → multi_gpu → distributed → partial_offload* → cpu*        │
        (* only with cpu_offloading; a gpu_selector replaces the list)        │
        │                                                                     │
        ▼                                                                     ▼
    fewest bytes on subordinates (rpc_traffic),              Unschedulable: "0/N workers fit: …",
    then score (spread | binpack, 0..100),                   plus what enabling CPU offloading would do
    then worker name and device ids

Pure: reads the snapshot and the estimator, writes nothing. The caller commits the placement
(compare-and-swap on the instance) and carries on with ``snapshot.with_claim(...)``.

Cost: filters and kinds work on the snapshot's arrays (no Python loop over workers on the path
to a placement); per-layout arrays are cached on the layout. At 10,000 workers × 8 GPUs a decision
takes a few milliseconds (``benchmarks/scheduler.py``); only ``explain`` visits rejected workers
one by one, to phrase their reasons.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from gpufleet.common.units import format_bytes
from gpufleet.estimate.config import Placement as LayerPlacement
from gpufleet.estimate.vllm_model import VllmModel
from gpufleet.scheduler.framework import CandidateKind, Filter, Placement, Request, Unschedulable
from gpufleet.scheduler.plugins.arrays import gpu_mask
from gpufleet.scheduler.plugins.backend import BackendSupport
from gpufleet.scheduler.plugins.backoff import FailureBackoff
from gpufleet.scheduler.plugins.cpu import CpuOnly
from gpufleet.scheduler.plugins.distributed import Distributed
from gpufleet.scheduler.plugins.fit import estimate
from gpufleet.scheduler.plugins.gpu_selector import GpuSelector
from gpufleet.scheduler.plugins.labels import WorkerSelector
from gpufleet.scheduler.plugins.manual import ManualSelection
from gpufleet.scheduler.plugins.multi_gpu import MultiGpu
from gpufleet.scheduler.plugins.partial import PartialOffload
from gpufleet.scheduler.plugins.resource_allocation import ResourceAllocation
from gpufleet.scheduler.plugins.rpc_traffic import subordinate_bytes
from gpufleet.scheduler.plugins.single_gpu import SingleGpu
from gpufleet.scheduler.plugins.vllm_cpu import VllmCpu
from gpufleet.scheduler.plugins.vllm_explain import memory_reason as vllm_memory_reason
from gpufleet.scheduler.plugins.vllm_gpus import VllmSingleGpu, VllmTensorParallel
from gpufleet.scheduler.plugins.vllm_pipeline import VllmPipelineParallel
from gpufleet.scheduler.plugins.worker_state import WorkerState
from gpufleet.scheduler.snapshot import ClusterSnapshot

FILTERS: tuple[Filter, ...] = (WorkerState(), WorkerSelector(), GpuSelector(), BackendSupport(), FailureBackoff())
GPU_KINDS: tuple[CandidateKind, ...] = (SingleGpu(), MultiGpu(), Distributed())
OFFLOAD_KINDS: tuple[CandidateKind, ...] = (PartialOffload(), CpuOnly())
MANUAL = ManualSelection()
# A vLLM model (safetensors) is placed by its own kinds: one GPU, then tensor parallel on one worker,
# then a pipeline across workers over Ray (if distributed), then vllm-cpu (gated inside the kind); a
# gpu_selector narrows the GPUs they consider.
VLLM_KINDS: tuple[CandidateKind, ...] = (VllmSingleGpu(), VllmTensorParallel(), VllmPipelineParallel(), VllmCpu())
VLLM_OFFLOAD_KINDS: tuple[CandidateKind, ...] = (VllmCpu(forced=True),)


def feasible(request: Request, snapshot: ClusterSnapshot) -> np.ndarray:
    """One boolean per worker (``snapshot.workers`` order): does it pass every filter."""
    passing = np.ones(len(snapshot.workers), dtype=bool)
    for check in FILTERS:
        passing &= check.passing(request, snapshot)
    return passing


def rejections(request: Request, snapshot: ClusterSnapshot, passing: np.ndarray) -> dict[str, str]:
    """The first filter's reason for each worker that did not pass (only asked when nothing fits)."""
    rejected: dict[str, str] = {}
    for position in np.flatnonzero(~passing):
        worker = snapshot.workers[int(position)]
        for check in FILTERS:
            status = check.check(request, worker, snapshot)
            if not status.ok:
                rejected[worker.name] = status.reason
                break
    return rejected


def candidates(
    request: Request, passing: np.ndarray, snapshot: ClusterSnapshot, kinds: Sequence[CandidateKind]
) -> list[Placement]:
    for kind in kinds:
        found = kind.candidates(request, passing, snapshot)
        if found:
            return found
    return []


def kinds_for(request: Request) -> tuple[CandidateKind, ...]:
    if isinstance(request.estimator, VllmModel):
        return VLLM_KINDS
    if request.gpu_selector:
        return (MANUAL,)
    return GPU_KINDS + (OFFLOAD_KINDS if request.cpu_offloading else ())


def best(request: Request, placements: Sequence[Placement], snapshot: ClusterSnapshot) -> Placement:
    """Fewest bytes on subordinates first (``rpc_traffic.py``), then the best score, then names."""
    scorer = ResourceAllocation(request.placement_strategy)

    def key(p: Placement) -> tuple[int, float, str, tuple[str, ...]]:
        return (subordinate_bytes(p), -round(scorer.score(request, p, snapshot), 6), p.worker.name, p.device_ids)

    return min(placements, key=key)


def schedule(request: Request, snapshot: ClusterSnapshot) -> Placement | Unschedulable:
    passing = feasible(request, snapshot)
    found = candidates(request, passing, snapshot, kinds_for(request)) if passing.any() else []
    if found:
        return best(request, found, snapshot)
    return explain(request, snapshot, passing)


def explain(request: Request, snapshot: ClusterSnapshot, passing: np.ndarray) -> Unschedulable:
    """``0/N workers fit: a insufficient VRAM (…), b not matching worker_selector k=v, c not ready``."""
    reasons = rejections(request, snapshot, passing)
    memory_reason = _memory_reason(request, snapshot, passing)
    for position in np.flatnonzero(passing):
        reasons[snapshot.workers[int(position)].name] = memory_reason
    counts = Counter(reasons.values())
    parts = [f"{count} {reason}" for reason, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    message = f"0/{len(snapshot.workers)} workers fit: {', '.join(parts)}" if parts else "no workers have joined yet"
    hint = _offloading_hint(request, snapshot, passing)
    if hint:
        message += f"; {hint}"
    return Unschedulable(message, tuple(sorted(reasons.items())))


def _memory_reason(request: Request, snapshot: ClusterSnapshot, passing: np.ndarray) -> str:
    if isinstance(request.estimator, VllmModel):
        return vllm_memory_reason(request, snapshot, passing)
    gpus = gpu_mask(request, snapshot, passing)
    if request.gpu_selector:
        return "selected devices too small (gpu_selector)"
    if not gpus.any():
        return "no GPU (enable CPU offloading to use the CPU)" if not request.cpu_offloading else "insufficient RAM"
    single = estimate(request, LayerPlacement(gpus=1))
    largest = int(snapshot.free_array[gpus].max())
    if single.vram[0] <= largest:
        return f"insufficient RAM (needs {format_bytes(single.ram)})"
    return f"insufficient VRAM (needs {format_bytes(single.vram[0])} on one GPU, largest free {format_bytes(largest)})"


def _offloading_hint(request: Request, snapshot: ClusterSnapshot, passing: np.ndarray) -> str:
    if request.cpu_offloading or request.gpu_selector or not passing.any():
        return ""
    vllm = isinstance(request.estimator, VllmModel)
    found = candidates(request, passing, snapshot, VLLM_OFFLOAD_KINDS if vllm else OFFLOAD_KINDS)
    if not found:
        return ""
    where = best(request, found, snapshot)
    layers = f"{where.offload_layers}/{where.total_layers} layers on GPU" if where.offload_layers else "on its CPU only"
    return f"enabling CPU offloading would let it run on {where.worker.name} ({layers})"
