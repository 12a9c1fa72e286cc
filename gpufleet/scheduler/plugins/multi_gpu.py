"""Kind 2: several GPUs of one worker, split by free memory; the fewest GPUs that fit.

Pruning: a split over k GPUs needs at least the model's offloaded weights and KV cache in total,
so a worker whose k most-free GPUs hold less is skipped without an estimate; workers whose free
memory looks the same (the common case in a uniform cluster) share one estimate.
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
from gpufleet.scheduler.snapshot import ClusterSnapshot, WorkerView


def lower_bound(request: Request) -> int:
    """Bytes any full offload needs in total over its devices: weights (less the input layer) and KV."""
    single = estimate(request, LayerPlacement(gpus=1))
    return single.devices[0].weights + single.devices[0].kv_cache


class MultiGpu:
    mode = Mode.MULTI_GPU

    def candidates(self, request: Request, workers: Sequence[WorkerView], snapshot: ClusterSnapshot) -> list[Placement]:
        floor = lower_bound(request)
        placements = []
        for worker in workers:
            gpus = most_free_first(snapshot, usable_gpus(request, worker))
            running = 0
            for k in range(1, len(gpus) + 1):
                running += snapshot.free(gpus[k - 1])
                if k < 2 or running < floor:
                    continue
                chosen = gpus[:k]
                split = split_by_free(snapshot, chosen)
                result = estimate(request, LayerPlacement(gpus=k, tensor_split=split))
                if shortfall(snapshot, result, worker, chosen) is None:
                    placements.append(
                        Placement(
                            self.mode,
                            worker,
                            tuple(g.id for g in chosen),
                            claim_of(result, chosen),
                            result.offloaded_layers,
                            result.layers,
                            split,
                        )
                    )
                    break
        return placements
