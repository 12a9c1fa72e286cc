"""Kind 4 (only with ``cpu_offloading``): the worker's GPUs take as many layers as fit, the CPU the rest.

Per worker a binary search over ``--n-gpu-layers`` (about 7 estimates for 80 layers); workers
whose free memory looks the same share the search.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpufleet.estimate.config import Placement as LayerPlacement
from gpufleet.scheduler.framework import Mode, Placement, Request
from gpufleet.scheduler.plugins.fit import (
    claim_of,
    estimate,
    most_free_first,
    shortfall,
    split_by_free,
    usable_gpus,
)
from gpufleet.scheduler.snapshot import ClusterSnapshot, DeviceView, WorkerView


def most_layers(
    request: Request, worker: WorkerView, gpus: list[DeviceView], snapshot: ClusterSnapshot
) -> Placement | None:
    """The placement offloading the most layers to ``gpus`` (at least one) that fits, or None."""
    split = split_by_free(snapshot, gpus)
    total_layers = request.estimator.info.offloadable_layers
    low, high, best = 1, total_layers - 1, None
    while low <= high:
        middle = (low + high) // 2
        result = estimate(request, LayerPlacement(gpus=len(gpus), gpu_layers=middle, tensor_split=split))
        if shortfall(snapshot, result, worker, gpus) is None:
            best = (middle, result)
            low = middle + 1
        else:
            high = middle - 1
    if best is None:
        return None
    _, result = best
    return Placement(
        Mode.PARTIAL_OFFLOAD,
        worker,
        tuple(g.id for g in gpus),
        claim_of(result, gpus),
        result.offloaded_layers,
        result.layers,
        split,
    )


class PartialOffload:
    mode = Mode.PARTIAL_OFFLOAD

    def candidates(self, request: Request, workers: Sequence[WorkerView], snapshot: ClusterSnapshot) -> list[Placement]:
        placements = []
        for worker in workers:
            gpus = most_free_first(snapshot, usable_gpus(request, worker))
            if gpus:
                placement = most_layers(request, worker, gpus, snapshot)
                if placement is not None:
                    placements.append(placement)
        best = max((p.offload_layers for p in placements), default=0)
        return [p for p in placements if p.offload_layers == best]  # most of the model on GPUs first
