"""One placement decision: filter → candidates (first kind that yields any) → score → best, or why not.

::

    request, snapshot
        │
        ▼
    filters, per worker ── rejected workers keep their reason ───────────────┐
        │ (ready · worker_selector · gpu_selector · backend · back-off)       │
        ▼                                                                     │
    candidate kinds, in order, stop at the first with any placement           │
        single_gpu → multi_gpu → distributed → partial_offload* → cpu*        │
        (* only with cpu_offloading; a gpu_selector replaces the list)        │
        │                                                                     │
        ▼                                                                     ▼
    score (spread | binpack, 0..100), best wins;              Unschedulable: "0/N workers fit: …",
    ties broken by worker name and device ids                 plus what enabling CPU offloading would do

Pure: reads the snapshot and the estimator, writes nothing. The caller commits the placement
(compare-and-swap on the instance) and carries on with ``snapshot.with_claim(...)``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from gpufleet.common.units import format_bytes
from gpufleet.estimate.config import Placement as LayerPlacement
from gpufleet.scheduler.framework import CandidateKind, Filter, Placement, Request, Unschedulable
from gpufleet.scheduler.plugins.backend import BackendSupport
from gpufleet.scheduler.plugins.backoff import FailureBackoff
from gpufleet.scheduler.plugins.cpu import CpuOnly
from gpufleet.scheduler.plugins.distributed import Distributed
from gpufleet.scheduler.plugins.fit import estimate, usable_gpus
from gpufleet.scheduler.plugins.gpu_selector import GpuSelector
from gpufleet.scheduler.plugins.labels import WorkerSelector
from gpufleet.scheduler.plugins.manual import ManualSelection
from gpufleet.scheduler.plugins.multi_gpu import MultiGpu
from gpufleet.scheduler.plugins.partial import PartialOffload
from gpufleet.scheduler.plugins.resource_allocation import ResourceAllocation
from gpufleet.scheduler.plugins.single_gpu import SingleGpu
from gpufleet.scheduler.plugins.worker_state import WorkerState
from gpufleet.scheduler.snapshot import ClusterSnapshot, WorkerView

FILTERS: tuple[Filter, ...] = (WorkerState(), WorkerSelector(), GpuSelector(), BackendSupport(), FailureBackoff())
GPU_KINDS: tuple[CandidateKind, ...] = (SingleGpu(), MultiGpu(), Distributed())
OFFLOAD_KINDS: tuple[CandidateKind, ...] = (PartialOffload(), CpuOnly())
MANUAL = ManualSelection()


def feasible_workers(request: Request, snapshot: ClusterSnapshot) -> tuple[list[WorkerView], dict[str, str]]:
    """Workers passing every filter, and the first rejection reason of each other worker."""
    passed: list[WorkerView] = []
    rejected: dict[str, str] = {}
    for worker in snapshot.workers:
        for check in FILTERS:
            status = check.check(request, worker, snapshot)
            if not status.ok:
                rejected[worker.name] = status.reason
                break
        else:
            passed.append(worker)
    return passed, rejected


def candidates(
    request: Request, workers: Sequence[WorkerView], snapshot: ClusterSnapshot, kinds: Sequence[CandidateKind]
) -> list[Placement]:
    for kind in kinds:
        found = kind.candidates(request, workers, snapshot)
        if found:
            return found
    return []


def kinds_for(request: Request) -> tuple[CandidateKind, ...]:
    if request.gpu_selector:
        return (MANUAL,)
    return GPU_KINDS + (OFFLOAD_KINDS if request.cpu_offloading else ())


def best(request: Request, placements: Sequence[Placement], snapshot: ClusterSnapshot) -> Placement:
    scorer = ResourceAllocation(request.placement_strategy)
    return min(placements, key=lambda p: (-round(scorer.score(request, p, snapshot), 6), p.worker.name, p.device_ids))


def schedule(request: Request, snapshot: ClusterSnapshot) -> Placement | Unschedulable:
    workers, rejected = feasible_workers(request, snapshot)
    found = candidates(request, workers, snapshot, kinds_for(request)) if workers else []
    if found:
        return best(request, found, snapshot)
    return explain(request, snapshot, workers, rejected)


def explain(
    request: Request, snapshot: ClusterSnapshot, workers: Sequence[WorkerView], rejected: dict[str, str]
) -> Unschedulable:
    """``0/N workers fit: a insufficient VRAM (…), b not matching worker_selector k=v, c not ready``."""
    reasons = dict(rejected)
    memory_reason = _memory_reason(request, snapshot, workers)
    for worker in workers:
        reasons[worker.name] = memory_reason
    counts = Counter(reasons.values())
    parts = [f"{count} {reason}" for reason, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    message = f"0/{len(snapshot.workers)} workers fit: {', '.join(parts)}" if parts else "no workers have joined yet"
    hint = _offloading_hint(request, snapshot, workers)
    if hint:
        message += f"; {hint}"
    return Unschedulable(message, tuple(sorted(reasons.items())))


def _memory_reason(request: Request, snapshot: ClusterSnapshot, workers: Sequence[WorkerView]) -> str:
    gpus = [g for w in workers for g in usable_gpus(request, w)]
    if request.gpu_selector:
        return "selected devices too small (gpu_selector)"
    if not gpus:
        return "no GPU (enable CPU offloading to use the CPU)" if not request.cpu_offloading else "insufficient RAM"
    single = estimate(request, LayerPlacement(gpus=1))
    largest = max(snapshot.free(g) for g in gpus)
    if single.vram[0] <= largest:
        return f"insufficient RAM (needs {format_bytes(single.ram)})"
    return f"insufficient VRAM (needs {format_bytes(single.vram[0])} on one GPU, largest free {format_bytes(largest)})"


def _offloading_hint(request: Request, snapshot: ClusterSnapshot, workers: Sequence[WorkerView]) -> str:
    if request.cpu_offloading or request.gpu_selector or not workers:
        return ""
    found = candidates(request, workers, snapshot, OFFLOAD_KINDS)
    if not found:
        return ""
    where = best(request, found, snapshot)
    layers = f"{where.offload_layers}/{where.total_layers} layers on GPU" if where.offload_layers else "on its CPU only"
    return f"enabling CPU offloading would let it run on {where.worker.name} ({layers})"
