"""``gpu_selector``: with devices chosen by hand, only workers owning one of them take part."""

from __future__ import annotations

from gpufleet.scheduler.framework import Request, Status
from gpufleet.scheduler.snapshot import ClusterSnapshot, WorkerView


class GpuSelector:
    name = "gpu_selector"

    def check(self, request: Request, worker: WorkerView, snapshot: ClusterSnapshot) -> Status:
        if not request.gpu_selector:
            return Status.fits()
        if any(device.id in request.gpu_selector for device in worker.devices):
            return Status.fits()
        return Status(False, "has none of the devices in gpu_selector")
