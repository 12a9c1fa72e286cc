"""Scoring: one resource-allocation scorer for both strategies, differing in one line.

For a placement, let ``u_dev`` be the mean, over the devices it uses, of their usage after placing
it, and ``u_worker`` the same over every GPU of the workers involved (usage = claimed / (total −
reserved − used by others)). Then::

    allocation = (u_dev + u_worker) / 2            # 0 (idle) .. 1 (full)
    binpack:  score = 100 × allocation             # fill what is already in use
    spread:   score = 100 × (1 − allocation)       # prefer what is least used

Binpack keeps whole GPUs free for big models; spread puts replicas on different GPUs and workers.
The worker term makes spread pick another worker over another GPU of a busy one. ``score_single``
and ``score_rows`` are the same formula over arrays, for the many one-device candidates of a large
cluster and for many several-GPU candidates (one worker each) at once.
"""

from __future__ import annotations

import numpy as np

from gpufleet.scheduler.framework import Placement, Request
from gpufleet.scheduler.snapshot import ClusterSnapshot


def _strategy_score(allocation: np.ndarray | float, strategy: str) -> np.ndarray | float:
    return 100 * allocation if strategy == "binpack" else 100 * (1 - allocation)


class ResourceAllocation:
    def __init__(self, strategy: str) -> None:
        self.strategy = strategy

    def score(self, request: Request, placement: Placement, snapshot: ClusterSnapshot) -> float:
        layout = snapshot.layout
        claims = placement.all_claims()
        indices = np.asarray([layout.device_index[d] for d in claims if d in layout.device_index], dtype=np.int64)
        amounts = np.asarray([claims[d] for d in claims if d in layout.device_index], dtype=np.int64)
        gpu = layout.is_gpu[indices]
        used = indices[gpu] if gpu.any() else indices  # GPUs decide; a CPU placement has only its CPU
        used_amounts = amounts[gpu] if gpu.any() else amounts
        usable = np.maximum(layout.usable[used], 1)
        u_dev = float(np.mean(np.minimum((snapshot.claimed_array[used] + used_amounts) / usable, 1.0)))
        owners = np.unique(layout.owner[indices])
        claimed, total = snapshot.gpu_usage()
        extra = float(amounts[gpu].sum()) if gpu.any() else float(amounts.sum())
        worker_total = float(total[owners].sum())
        u_worker = min((float(claimed[owners].sum()) + extra) / worker_total, 1.0) if worker_total > 0 else u_dev
        return float(_strategy_score((u_dev + u_worker) / 2, self.strategy))

    def score_single(self, snapshot: ClusterSnapshot, devices: np.ndarray, need: int) -> np.ndarray:
        """Scores of placing ``need`` bytes on each one of ``devices`` (flat indices)."""
        layout = snapshot.layout
        usable = np.maximum(layout.usable[devices], 1)
        u_dev = np.minimum((snapshot.claimed_array[devices] + need) / usable, 1.0)
        claimed, total = snapshot.gpu_usage()
        owners = layout.owner[devices]
        worker_total = total[owners]
        is_gpu = layout.is_gpu[devices]
        u_worker = np.where(
            is_gpu & (worker_total > 0), np.minimum((claimed[owners] + need) / np.maximum(worker_total, 1), 1.0), u_dev
        )
        return np.asarray(_strategy_score((u_dev + u_worker) / 2, self.strategy))

    def score_rows(self, snapshot: ClusterSnapshot, devices: np.ndarray, amounts: np.ndarray) -> np.ndarray:
        """Scores of candidates on one worker each: row r puts ``amounts[r, j]`` bytes on GPU ``devices[r, j]``."""
        layout = snapshot.layout
        usable = np.maximum(layout.usable[devices], 1)
        u_dev = np.minimum((snapshot.claimed_array[devices] + amounts) / usable, 1.0).mean(axis=1)
        claimed, total = snapshot.gpu_usage()
        owners = layout.owner[devices[:, 0]]
        worker_total = total[owners]
        u_worker = np.where(
            worker_total > 0,
            np.minimum((claimed[owners] + amounts.sum(axis=1)) / np.maximum(worker_total, 1), 1.0),
            u_dev,
        )
        return np.asarray(_strategy_score((u_dev + u_worker) / 2, self.strategy))
