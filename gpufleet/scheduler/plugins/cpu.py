"""Kind 5 (only with ``cpu_offloading``): the whole model on a worker's CPU and RAM."""

from __future__ import annotations

import numpy as np

from gpufleet.common.resources import Resources
from gpufleet.engines import supported_device_types
from gpufleet.estimate.config import Placement as LayerPlacement
from gpufleet.scheduler.framework import Mode, Placement, Request
from gpufleet.scheduler.plugins.arrays import selected_devices, top
from gpufleet.scheduler.plugins.fit import estimate
from gpufleet.scheduler.plugins.resource_allocation import ResourceAllocation
from gpufleet.scheduler.snapshot import ClusterSnapshot

KEEP = 8


class CpuOnly:
    mode = Mode.CPU

    def candidates(self, request: Request, passing: np.ndarray, snapshot: ClusterSnapshot) -> list[Placement]:
        if "cpu" not in supported_device_types(request.backend):
            return []
        result = estimate(request, LayerPlacement(gpus=0))
        layout = snapshot.layout
        cpus = layout.cpu_of_worker
        allowed = passing.copy()
        if request.gpu_selector:
            allowed &= selected_devices(snapshot, request.gpu_selector)[cpus]
        fits = allowed & (snapshot.free_array[cpus] >= result.ram)
        indices = cpus[fits]
        if indices.size == 0:
            return []
        scores = ResourceAllocation(request.placement_strategy).score_single(snapshot, indices, result.ram)
        best = indices[top(scores, KEEP)]  # ties keep name order
        return [
            Placement(
                self.mode,
                layout.workers[int(layout.owner[i])],
                (layout.devices[int(i)].id,),
                Resources(result.ram, {}),
                0,
                result.layers,
            )
            for i in best
        ]
