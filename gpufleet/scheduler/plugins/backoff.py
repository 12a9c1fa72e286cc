"""A worker where this instance's engine kept failing is avoided for a while (the back-off is per
instance and worker, decided by the service that records releases)."""

from __future__ import annotations

import numpy as np

from gpufleet.scheduler.framework import Request, Status
from gpufleet.scheduler.snapshot import ClusterSnapshot, WorkerView


class FailureBackoff:
    name = "backoff"

    def passing(self, request: Request, snapshot: ClusterSnapshot) -> np.ndarray:
        mask = np.ones(len(snapshot.workers), dtype=bool)
        for name in request.avoid:
            worker = snapshot.worker(name)
            if worker is not None:
                mask[snapshot.position(worker)] = False
        return mask

    def check(self, request: Request, worker: WorkerView, snapshot: ClusterSnapshot) -> Status:
        why = request.avoid.get(worker.name)
        if why is None:
            return Status.fits()
        return Status(False, f"avoided after engine failures: {why}")
