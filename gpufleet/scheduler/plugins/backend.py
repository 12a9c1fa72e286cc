"""The backend must run on the worker's devices: each engine's description says which device types
it supports (``engines.ENGINES``; llama.cpp everywhere), and a backend not available at all fits
nowhere."""

from __future__ import annotations

import numpy as np

from gpufleet.engines import supported_device_types
from gpufleet.scheduler.framework import Request, Status
from gpufleet.scheduler.plugins.arrays import device_type_mask
from gpufleet.scheduler.snapshot import ClusterSnapshot, WorkerView


class BackendSupport:
    name = "backend"

    def passing(self, request: Request, snapshot: ClusterSnapshot) -> np.ndarray:
        owners = snapshot.layout.owner[device_type_mask(snapshot, request.backend)]
        return np.bincount(owners, minlength=len(snapshot.workers)) > 0

    def check(self, request: Request, worker: WorkerView, snapshot: ClusterSnapshot) -> Status:
        supported = supported_device_types(request.backend)
        if any(device.type in supported for device in worker.devices):
            return Status.fits()
        return Status(False, f"no device {request.backend} can run on")
