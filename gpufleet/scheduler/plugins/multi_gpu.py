"""Kind 2: several GPUs of one worker, split by free memory; the fewest GPUs that fit.

Pruning, over all workers at once: a split over k GPUs needs at least the model's offloaded
weights and KV cache in total, so per worker the smallest k whose k most-free GPUs hold that much
is found with a cumulative sum, without an estimate; then workers with the same free-memory
profile share one estimate (``groups``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gpufleet.estimate.config import Placement as LayerPlacement
from gpufleet.scheduler.framework import Mode, Placement, Request
from gpufleet.scheduler.plugins.arrays import gpu_mask, sorted_free_rows
from gpufleet.scheduler.plugins.fit import claim_of, estimate, shortfall, split_by_free
from gpufleet.scheduler.plugins.groups import identical_rows
from gpufleet.scheduler.snapshot import ClusterSnapshot, WorkerView


def lower_bound(request: Request) -> int:
    """Bytes any full offload needs in total over its devices: weights (less the input layer) and KV."""
    single = estimate(request, LayerPlacement(gpus=1))
    return single.devices[0].weights + single.devices[0].kv_cache


class MultiGpu:
    mode = Mode.MULTI_GPU

    def candidates(self, request: Request, workers: Sequence[WorkerView], snapshot: ClusterSnapshot) -> list[Placement]:
        sorted_free, sorted_index = sorted_free_rows(snapshot, gpu_mask(request, snapshot, workers))
        if sorted_free.shape[1] < 2:
            return []
        floor = lower_bound(request)
        enough = np.cumsum(sorted_free, axis=1) >= floor
        enough[:, 0] = False  # one GPU is kind 1's business
        counts = (sorted_index >= 0).sum(axis=1)
        first_k = np.where(enough.any(axis=1), enough.argmax(axis=1) + 1, 0)
        placements = []
        for k in np.unique(first_k[first_k > 0]):
            rows = np.nonzero(first_k == k)[0]
            for group in identical_rows(snapshot, rows, sorted_free):
                placement = self._fit_group(request, snapshot, group, int(k), int(counts[group[0]]), sorted_index)
                if placement is not None:
                    placements.append(placement)
        return placements

    def _fit_group(
        self,
        request: Request,
        snapshot: ClusterSnapshot,
        group: np.ndarray,
        k: int,
        available: int,
        sorted_index: np.ndarray,
    ) -> Placement | None:
        """The fewest GPUs (from k up) that fit, for the first worker of a group of look-alikes."""
        position = int(group[0])
        worker = snapshot.workers[position]
        layout = snapshot.layout
        for count in range(k, available + 1):
            chosen = [layout.devices[int(i)] for i in sorted_index[position, :count]]
            split = split_by_free(snapshot, chosen)
            result = estimate(request, LayerPlacement(gpus=count, tensor_split=split))
            if shortfall(snapshot, result, worker, chosen) is None:
                return Placement(
                    self.mode,
                    worker,
                    tuple(g.id for g in chosen),
                    claim_of(result, chosen),
                    result.offloaded_layers,
                    result.layers,
                    split,
                )
        return None
