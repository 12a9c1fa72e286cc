"""Only ``ready`` workers get new instances (not maintenance, not_ready, unreachable)."""

from __future__ import annotations

import numpy as np

from gpufleet.scheduler.framework import Request, Status
from gpufleet.scheduler.plugins.arrays import cached
from gpufleet.scheduler.snapshot import ClusterSnapshot, WorkerView

REASONS = {"maintenance": "in maintenance", "not_ready": "not ready", "unreachable": "unreachable"}


class WorkerState:
    name = "worker_state"

    def passing(self, request: Request, snapshot: ClusterSnapshot) -> np.ndarray:
        def build() -> np.ndarray:
            return np.asarray([w.state == "ready" for w in snapshot.workers], dtype=bool)

        return cached(snapshot, "ready", build).copy()

    def check(self, request: Request, worker: WorkerView, snapshot: ClusterSnapshot) -> Status:
        if worker.state == "ready":
            return Status.fits()
        return Status(False, REASONS.get(worker.state, worker.state))
