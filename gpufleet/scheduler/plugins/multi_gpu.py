"""Kind 2: several GPUs of one worker, split by free memory; the fewest GPUs that fit.

Pruning, over all workers at once: a split over k GPUs needs at least the model's offloaded
weights and KV cache in total, so per worker the smallest k whose k most-free GPUs hold that much
is found with a cumulative sum, without an estimate; then workers with the same free-memory
profile share one estimate (``groups``). With more than ``groups.EVALUATED`` groups for a k, the ones
evaluated are those that would score best if the k-GPU estimate's total were split exactly by free
memory (``ResourceAllocation.score_rows``): the estimate only moves whole layers from that.
"""

from __future__ import annotations

import numpy as np

from gpufleet.estimate.config import Placement as LayerPlacement
from gpufleet.scheduler.framework import Mode, Placement, Request
from gpufleet.scheduler.plugins.arrays import gpu_mask, sorted_free_rows
from gpufleet.scheduler.plugins.fit import claim_of, estimate, shortfall, split_by_free
from gpufleet.scheduler.plugins.groups import EVALUATED, most_promising, representatives
from gpufleet.scheduler.plugins.resource_allocation import ResourceAllocation
from gpufleet.scheduler.snapshot import ClusterSnapshot


def lower_bound(request: Request) -> int:
    """Bytes any full offload needs in total over its devices: weights (less the input layer) and KV."""
    single = estimate(request, LayerPlacement(gpus=1))
    return single.devices[0].weights + single.devices[0].kv_cache


class MultiGpu:
    mode = Mode.MULTI_GPU

    def candidates(self, request: Request, passing: np.ndarray, snapshot: ClusterSnapshot) -> list[Placement]:
        sorted_free, sorted_index = sorted_free_rows(snapshot, gpu_mask(request, snapshot, passing))
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
            groups = representatives(snapshot, rows, sorted_free)
            promise = _predicted_scores(request, snapshot, groups, int(k), sorted_free, sorted_index)
            for position in most_promising(groups, promise):
                placement = self._fit(request, snapshot, position, int(k), int(counts[position]), sorted_index)
                if placement is not None:
                    placements.append(placement)
        return placements

    def _fit(
        self,
        request: Request,
        snapshot: ClusterSnapshot,
        position: int,
        k: int,
        available: int,
        sorted_index: np.ndarray,
    ) -> Placement | None:
        """The fewest GPUs (from k up) that fit, for the first worker of a group of look-alikes."""
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


def _predicted_scores(
    request: Request,
    snapshot: ClusterSnapshot,
    positions: list[int],
    k: int,
    sorted_free: np.ndarray,
    sorted_index: np.ndarray,
) -> np.ndarray:
    """Per worker position: the score of its k most-free GPUs taking the k-GPU estimate split by free memory."""
    if len(positions) <= EVALUATED:
        return np.zeros(len(positions))  # all are evaluated: no prediction needed
    rows = np.asarray(positions, dtype=np.int64)
    total = sum(estimate(request, LayerPlacement(gpus=k)).vram)
    free = sorted_free[rows, :k].astype(np.float64)
    amounts = total * free / np.maximum(free.sum(axis=1, keepdims=True), 1)
    return ResourceAllocation(request.placement_strategy).score_rows(snapshot, sorted_index[rows, :k], amounts)
