"""``worker_selector``: every label must match."""

from __future__ import annotations

from gpufleet.scheduler.framework import Request, Status
from gpufleet.scheduler.snapshot import ClusterSnapshot, WorkerView


class WorkerSelector:
    name = "worker_selector"

    def check(self, request: Request, worker: WorkerView, snapshot: ClusterSnapshot) -> Status:
        missing = [f"{k}={v}" for k, v in sorted(request.worker_selector.items()) if worker.labels.get(k) != v]
        if not missing:
            return Status.fits()
        return Status(False, f"not matching worker_selector {' '.join(missing)}")
