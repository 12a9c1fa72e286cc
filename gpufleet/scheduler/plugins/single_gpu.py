"""Kind 1: one GPU holds the whole model (every layer, the output too).

The estimate is the same for every GPU, so it is computed once; which GPUs fit, and how each would
score, is then a few array operations over all devices, and only the best few become placements.
"""

from __future__ import annotations

import numpy as np

from gpufleet.common.resources import Resources
from gpufleet.estimate.config import Placement as LayerPlacement
from gpufleet.scheduler.framework import Mode, Placement, Request
from gpufleet.scheduler.plugins.arrays import gpu_mask, top
from gpufleet.scheduler.plugins.fit import estimate
from gpufleet.scheduler.plugins.resource_allocation import ResourceAllocation
from gpufleet.scheduler.snapshot import ClusterSnapshot

KEEP = 8  # best-scoring devices turned into placements (the final choice is among them)


class SingleGpu:
    mode = Mode.SINGLE_GPU

    def candidates(self, request: Request, passing: np.ndarray, snapshot: ClusterSnapshot) -> list[Placement]:
        result = estimate(request, LayerPlacement(gpus=1))
        need_vram, need_ram = result.vram[0], result.ram
        layout = snapshot.layout
        free = snapshot.free_array
        host_free = free[layout.cpu_of_worker[layout.owner]]
        fits = gpu_mask(request, snapshot, passing) & (free >= need_vram) & (host_free >= need_ram)
        indices = np.nonzero(fits)[0]
        if indices.size == 0:
            return []
        scores = ResourceAllocation(request.placement_strategy).score_single(snapshot, indices, need_vram)
        best = indices[top(scores, KEEP)]  # ties keep name order
        placements = []
        for index in best:
            device = layout.devices[int(index)]
            worker = layout.workers[int(layout.owner[index])]
            placements.append(
                Placement(
                    self.mode,
                    worker,
                    (device.id,),
                    Resources(need_ram, {device.id: need_vram}),
                    result.offloaded_layers,
                    result.layers,
                )
            )
        return placements
