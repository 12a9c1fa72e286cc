"""vLLM kinds on GPUs: one GPU (tensor parallel 1), then several GPUs of one worker (tensor parallel k).

``VllmTensorParallel`` tries vLLM's valid TP sizes above 1 (``VllmModel.valid_tp``: they divide the
attention heads, kv heads and intermediate size) in increasing order, and returns the placements of
the first size some worker can take: the fewest GPUs. On a worker its most-free usable GPUs are
taken (``vllm_fit.usable_gpus``). Each used GPU is claimed ``⌊u × total⌋`` (vLLM's claim) and the host
``host_ram``; candidates are scored like llama.cpp's (``ResourceAllocation.score_rows``), best
``KEEP`` kept. With a ``gpu_selector`` only the selected GPUs are candidates. Across workers (Ray) is
not built: a model that needs more GPUs than any one worker has fits nowhere, and says so.
"""

from __future__ import annotations

import numpy as np

from gpufleet.common.resources import Resources
from gpufleet.scheduler.framework import EngineClaim, Mode, Placement, Request
from gpufleet.scheduler.plugins.arrays import sorted_free_rows, top
from gpufleet.scheduler.plugins.resource_allocation import ResourceAllocation
from gpufleet.scheduler.plugins.vllm_fit import claims, host_fits, host_ram, usable_gpus, vllm_model
from gpufleet.scheduler.snapshot import ClusterSnapshot

KEEP = 8


def place(request: Request, passing: np.ndarray, snapshot: ClusterSnapshot, tp: int) -> list[Placement]:
    """The best placements of a tp-way instance, each on tp usable GPUs of one worker."""
    model = vllm_model(request)
    usable = usable_gpus(request, snapshot, passing, tp)
    ram = host_ram(model, tp)
    if tp == 1:  # any usable GPU: one row per GPU, so binpack may pick a worker's fullest one
        devices = np.flatnonzero(usable & host_fits(snapshot, ram)[snapshot.layout.owner])[:, None]
    else:
        _, sorted_index = sorted_free_rows(snapshot, usable)
        rows = np.flatnonzero(((sorted_index >= 0).sum(axis=1) >= tp) & host_fits(snapshot, ram))
        devices = sorted_index[rows, :tp]
    if devices.shape[0] == 0:
        return []
    amounts = claims(model, snapshot)[devices]
    scores = ResourceAllocation(request.placement_strategy).score_rows(snapshot, devices, amounts)
    layout = snapshot.layout
    engine = EngineClaim(tp, model.utilization, model.max_model_len())
    layers = model.estimator.config.num_hidden_layers
    placements = []
    for row in top(scores, KEEP):  # ties keep name order
        chosen = [layout.devices[int(i)] for i in devices[row]]
        vram = {d.id: int(a) for d, a in zip(chosen, amounts[row], strict=True)}
        placements.append(
            Placement(
                Mode.SINGLE_GPU if tp == 1 else Mode.MULTI_GPU,
                layout.workers[int(layout.owner[devices[row, 0]])],
                tuple(d.id for d in chosen),
                Resources(ram, vram),
                layers,
                layers,
                engine=engine,
            )
        )
    return placements


class VllmSingleGpu:
    mode = Mode.SINGLE_GPU

    def candidates(self, request: Request, passing: np.ndarray, snapshot: ClusterSnapshot) -> list[Placement]:
        return place(request, passing, snapshot, 1)


class VllmTensorParallel:
    mode = Mode.MULTI_GPU

    def candidates(self, request: Request, passing: np.ndarray, snapshot: ClusterSnapshot) -> list[Placement]:
        most = snapshot.layout.gpu_matrix.shape[1]  # GPUs of the largest worker
        for tp in vllm_model(request).valid_tp(most):
            found = place(request, passing, snapshot, tp) if tp > 1 else []
            if found:
                return found
        return []
