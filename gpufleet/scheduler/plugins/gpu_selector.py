"""``gpu_selector``: with devices chosen by hand, only workers owning one of them take part."""

from __future__ import annotations

import numpy as np

from gpufleet.scheduler.framework import Request, Status
from gpufleet.scheduler.plugins.arrays import selected_devices
from gpufleet.scheduler.snapshot import ClusterSnapshot, WorkerView


class GpuSelector:
    name = "gpu_selector"

    def passing(self, request: Request, snapshot: ClusterSnapshot) -> np.ndarray:
        if not request.gpu_selector:
            return np.ones(len(snapshot.workers), dtype=bool)
        owners = snapshot.layout.owner[selected_devices(snapshot, request.gpu_selector)]
        return np.bincount(owners, minlength=len(snapshot.workers)) > 0

    def check(self, request: Request, worker: WorkerView, snapshot: ClusterSnapshot) -> Status:
        if not request.gpu_selector:
            return Status.fits()
        if any(device.id in request.gpu_selector for device in worker.devices):
            return Status.fits()
        return Status(False, "has none of the devices in gpu_selector")
