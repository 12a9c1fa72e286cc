"""vLLM kind across workers: pipeline parallel over Ray, one stage per worker, tensor parallel within it.

Tried after one-worker tensor parallel (``vllm_gpus.py``), for a model no single worker can hold.
Fewest workers first, then the smallest TP::

    for pp in 2, 3, …, min(passing workers, layers, MAX_STAGES):      # pp = number of workers
        for tp in valid TP sizes (``VllmModel.valid_tp``), increasing:
            usable_d  = free_d ≥ ⌊u × total_d⌋  and  need(tp, pp, total_d) ≤ ⌊u × total_d⌋
            eligible  = workers with ≥ tp usable GPUs and host_ram(tp) free
            if |eligible| ≥ pp: place on the pp best-scored eligible workers, tp GPUs each

``need(tp, pp, total)`` is the neediest stage's bytes per GPU (``VllmModel.gpu_need``: the first stage
holds the embedding, the last the head and the sampler), so any worker can take any stage. Each used
GPU is claimed ``⌊u × total⌋`` and each worker ``host_ram`` (the main's vLLM server and engine core,
a subordinate's Ray node and worker actor), the same rule as on one worker. A worker's candidate is its
tp most-free usable GPUs, scored like one-worker candidates (``ResourceAllocation.score_rows``); the
best-scored is the main worker: it holds the first stage, the Ray head and the API server. The others
are subordinates (``Placement.subordinates``), as for llama.cpp's RPC, in stage order. With
``distributed`` off the kind yields nothing. One candidate per decision: which pp workers is decided by
their scores, and every pipeline placement claims the same bytes on its subordinates.
"""

from __future__ import annotations

import numpy as np

from gpufleet.common.resources import Resources
from gpufleet.scheduler.framework import EngineClaim, Mode, Placement, Request, Subordinate
from gpufleet.scheduler.plugins.arrays import sorted_free_rows
from gpufleet.scheduler.plugins.resource_allocation import ResourceAllocation
from gpufleet.scheduler.plugins.vllm_fit import claims, host_fits, host_ram, usable_gpus, vllm_model
from gpufleet.scheduler.snapshot import ClusterSnapshot

MAX_STAGES = 16  # workers in one pipeline, as llama.cpp's MAX_HOSTS


def place(request: Request, passing: np.ndarray, snapshot: ClusterSnapshot, pp: int, tp: int) -> Placement | None:
    """The pp best workers with tp usable GPUs each, or None when fewer than pp have them."""
    model = vllm_model(request)
    usable = usable_gpus(request, snapshot, passing, tp, pp)
    _, sorted_index = sorted_free_rows(snapshot, usable)
    ram = host_ram(model, tp)
    rows = np.flatnonzero(((sorted_index >= 0).sum(axis=1) >= tp) & host_fits(snapshot, ram))
    if rows.size < pp:
        return None
    devices = sorted_index[rows, :tp]
    amounts = claims(model, snapshot)[devices]
    scores = ResourceAllocation(request.placement_strategy).score_rows(snapshot, devices, amounts)
    chosen = np.argsort(-scores, kind="stable")[:pp]  # ties keep name order
    layout = snapshot.layout
    stages = []
    for row in chosen:
        gpus = [layout.devices[int(i)] for i in devices[row]]
        worker = layout.workers[int(layout.owner[devices[row, 0]])]
        vram = {d.id: int(a) for d, a in zip(gpus, amounts[row], strict=True)}
        stages.append((worker, tuple(d.id for d in gpus), Resources(ram, vram)))
    (main, main_ids, main_claim), rest = stages[0], stages[1:]
    layers = model.estimator.config.num_hidden_layers
    return Placement(
        Mode.DISTRIBUTED,
        main,
        main_ids,
        main_claim,
        layers,
        layers,
        subordinates=tuple(Subordinate(w.id, w.name, ids, claim) for w, ids, claim in rest),
        engine=EngineClaim(tp, model.utilization, model.max_model_len(), pipeline_parallel_size=pp),
    )


class VllmPipelineParallel:
    mode = Mode.DISTRIBUTED

    def candidates(self, request: Request, passing: np.ndarray, snapshot: ClusterSnapshot) -> list[Placement]:
        workers = int(np.count_nonzero(passing))
        if not request.distributed or workers < 2:
            return []
        model = vllm_model(request)
        most = snapshot.layout.gpu_matrix.shape[1]  # GPUs of the largest worker
        stages = min(workers, model.estimator.config.num_hidden_layers, MAX_STAGES)
        for pp in range(2, stages + 1):
            for tp in model.valid_tp(most):
                found = place(request, passing, snapshot, pp, tp)
                if found is not None:
                    return [found]
        return []
