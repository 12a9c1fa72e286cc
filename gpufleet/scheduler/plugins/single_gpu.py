"""Kind 1: one GPU holds the whole model (every layer, the output too)."""

from __future__ import annotations

from collections.abc import Sequence

from gpufleet.estimate.config import Placement as LayerPlacement
from gpufleet.scheduler.framework import Mode, Placement, Request
from gpufleet.scheduler.plugins.fit import claim_of, estimate, shortfall, usable_gpus
from gpufleet.scheduler.snapshot import ClusterSnapshot, WorkerView


class SingleGpu:
    mode = Mode.SINGLE_GPU

    def candidates(self, request: Request, workers: Sequence[WorkerView], snapshot: ClusterSnapshot) -> list[Placement]:
        result = estimate(request, LayerPlacement(gpus=1))  # the same for every GPU: computed once
        placements = []
        for worker in workers:
            for gpu in usable_gpus(request, worker):
                if shortfall(snapshot, result, worker, [gpu]) is None:
                    placements.append(
                        Placement(
                            self.mode,
                            worker,
                            (gpu.id,),
                            claim_of(result, [gpu]),
                            result.offloaded_layers,
                            result.layers,
                        )
                    )
        return placements
