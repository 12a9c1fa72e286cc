"""``worker_selector``: every label must match.

Vectorised: one boolean per worker for each ``key=value`` asked, kept per layout, so a selector
costs one pass over the workers per scheduling pass, then an AND of cached arrays per decision.
"""

from __future__ import annotations

import numpy as np

from gpufleet.scheduler.framework import Request, Status
from gpufleet.scheduler.plugins.arrays import cached
from gpufleet.scheduler.snapshot import ClusterSnapshot, WorkerView


class WorkerSelector:
    name = "worker_selector"

    def passing(self, request: Request, snapshot: ClusterSnapshot) -> np.ndarray:
        mask = np.ones(len(snapshot.workers), dtype=bool)
        for key, value in request.worker_selector.items():
            mask &= _matching(snapshot, key, value)
        return mask

    def check(self, request: Request, worker: WorkerView, snapshot: ClusterSnapshot) -> Status:
        missing = [f"{k}={v}" for k, v in sorted(request.worker_selector.items()) if worker.labels.get(k) != v]
        if not missing:
            return Status.fits()
        return Status(False, f"not matching worker_selector {' '.join(missing)}")


def _matching(snapshot: ClusterSnapshot, key: str, value: str) -> np.ndarray:
    """Per worker: does its label ``key`` equal ``value``."""

    def build() -> np.ndarray:
        return np.asarray([w.labels.get(key) == value for w in snapshot.workers], dtype=bool)

    return cached(snapshot, ("label", key, value), build)
