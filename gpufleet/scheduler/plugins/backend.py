"""The backend must run on the worker's devices: llama.cpp everywhere, vLLM on NVIDIA/AMD GPUs only."""

from __future__ import annotations

from gpufleet.scheduler.framework import Request, Status
from gpufleet.scheduler.snapshot import ClusterSnapshot, WorkerView

SUPPORTED_DEVICES = {"llama.cpp": {"cuda", "rocm", "metal", "cpu"}, "vllm": {"cuda", "rocm"}}


class BackendSupport:
    name = "backend"

    def check(self, request: Request, worker: WorkerView, snapshot: ClusterSnapshot) -> Status:
        supported = SUPPORTED_DEVICES.get(request.backend, set())
        if any(device.type in supported for device in worker.devices):
            return Status.fits()
        return Status(False, f"no device {request.backend} can run on")
