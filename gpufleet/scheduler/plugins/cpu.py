"""Kind 5 (only with ``cpu_offloading``): the whole model on a worker's CPU and RAM."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gpufleet.common.resources import Resources
from gpufleet.engines import supported_device_types
from gpufleet.estimate.config import Placement as LayerPlacement
from gpufleet.scheduler.framework import Mode, Placement, Request
from gpufleet.scheduler.plugins.arrays import worker_mask
from gpufleet.scheduler.plugins.fit import estimate
from gpufleet.scheduler.plugins.resource_allocation import ResourceAllocation
from gpufleet.scheduler.snapshot import ClusterSnapshot, WorkerView

KEEP = 8


class CpuOnly:
    mode = Mode.CPU

    def candidates(self, request: Request, workers: Sequence[WorkerView], snapshot: ClusterSnapshot) -> list[Placement]:
        if "cpu" not in supported_device_types(request.backend):
            return []
        result = estimate(request, LayerPlacement(gpus=0))
        layout = snapshot.layout
        cpus = layout.cpu_of_worker
        allowed = worker_mask(snapshot, workers)
        if request.gpu_selector:
            allowed &= np.asarray([layout.devices[int(c)].id in request.gpu_selector for c in cpus], dtype=bool)
        fits = allowed & (snapshot.free_array[cpus] >= result.ram)
        indices = cpus[fits]
        if indices.size == 0:
            return []
        scores = ResourceAllocation(request.placement_strategy).score_single(snapshot, indices, result.ram)
        best = indices[np.argsort(-scores, kind="stable")[:KEEP]]
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
