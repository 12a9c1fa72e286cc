"""Kind 4 (only with ``cpu_offloading``): the worker's GPUs take as many layers as fit, the CPU the rest.

A binary search over ``--n-gpu-layers`` (about 7 estimates for 80 layers) per group of workers
that look the same; the placements offloading the most layers are kept. With more than
``groups.EVALUATED`` groups, the ones searched are those with the most free memory on their allowed
GPUs (where the most layers fit).
"""

from __future__ import annotations

import numpy as np

from gpufleet.estimate.config import Placement as LayerPlacement
from gpufleet.scheduler.framework import Mode, Placement, Request
from gpufleet.scheduler.plugins.arrays import gpu_mask, sorted_free_rows
from gpufleet.scheduler.plugins.fit import claim_of, estimate, shortfall, split_by_free
from gpufleet.scheduler.plugins.groups import most_promising, representatives
from gpufleet.scheduler.snapshot import ClusterSnapshot, DeviceView, WorkerView


def most_layers(
    request: Request, worker: WorkerView, gpus: list[DeviceView], snapshot: ClusterSnapshot
) -> Placement | None:
    """The placement offloading the most layers to ``gpus`` (at least one) that fits, or None."""
    split = split_by_free(snapshot, gpus)
    total_layers = request.gguf.info.offloadable_layers
    low, high, best = 1, total_layers - 1, None
    while low <= high:
        middle = (low + high) // 2
        result = estimate(request, LayerPlacement(gpus=len(gpus), gpu_layers=middle, tensor_split=split))
        if shortfall(snapshot, result, worker, gpus) is None:
            best = result
            low = middle + 1
        else:
            high = middle - 1
    if best is None:
        return None
    return Placement(
        Mode.PARTIAL_OFFLOAD,
        worker,
        tuple(g.id for g in gpus),
        claim_of(best, gpus),
        best.offloaded_layers,
        best.layers,
        split,
    )


class PartialOffload:
    mode = Mode.PARTIAL_OFFLOAD

    def candidates(self, request: Request, passing: np.ndarray, snapshot: ClusterSnapshot) -> list[Placement]:
        sorted_free, sorted_index = sorted_free_rows(snapshot, gpu_mask(request, snapshot, passing))
        if sorted_index.size == 0:
            return []
        rows = np.nonzero((sorted_index >= 0).any(axis=1))[0]
        layout = snapshot.layout
        placements = []
        groups = representatives(snapshot, rows, sorted_free)
        for position in most_promising(groups, sorted_free[groups].sum(axis=1)):
            gpus = [layout.devices[int(i)] for i in sorted_index[position] if i >= 0]
            placement = most_layers(request, snapshot.workers[position], gpus, snapshot)
            if placement is not None:
                placements.append(placement)
        best = max((p.offload_layers for p in placements), default=0)
        return [p for p in placements if p.offload_layers == best]  # most of the model on GPUs first
