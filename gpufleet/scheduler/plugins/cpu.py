"""Kind 5 (only with ``cpu_offloading``): the whole model on the worker's CPU and RAM."""

from __future__ import annotations

from collections.abc import Sequence

from gpufleet.estimate.config import Placement as LayerPlacement
from gpufleet.scheduler.framework import Claim, Mode, Placement, Request
from gpufleet.scheduler.plugins.backend import SUPPORTED_DEVICES
from gpufleet.scheduler.plugins.fit import estimate, shortfall
from gpufleet.scheduler.snapshot import ClusterSnapshot, WorkerView


class CpuOnly:
    mode = Mode.CPU

    def candidates(self, request: Request, workers: Sequence[WorkerView], snapshot: ClusterSnapshot) -> list[Placement]:
        if "cpu" not in SUPPORTED_DEVICES.get(request.backend, set()):
            return []
        result = estimate(request, LayerPlacement(gpus=0))
        return [
            Placement(self.mode, worker, (worker.cpu.id,), Claim(result.ram, {}), 0, result.layers)
            for worker in workers
            if (not request.gpu_selector or worker.cpu.id in request.gpu_selector)
            and shortfall(snapshot, result, worker, []) is None
        ]
