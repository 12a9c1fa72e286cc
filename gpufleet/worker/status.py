"""The worker's report about its machine (``WorkerStatus``)."""

from __future__ import annotations

import platform
import socket

import psutil

from gpufleet import __version__
from gpufleet.schemas.workers import WorkerStatus
from gpufleet.worker.devices.registry import DeviceDetection

ARCH_ALIASES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def machine_arch() -> str:
    machine = platform.machine().lower()
    return ARCH_ALIASES.get(machine, machine or "unknown")


def machine_os() -> str:
    return platform.system().lower() or "unknown"


def collect_status(detection: DeviceDetection, engines: dict[str, str] | None = None) -> WorkerStatus:
    """Blocking (NVML, subprocesses): call in a thread."""
    devices = detection.detect()
    cpu = next((d for d in devices if d.type == "cpu"), None)
    memory = psutil.virtual_memory()
    return WorkerStatus(
        hostname=socket.gethostname(),
        os=machine_os(),
        arch=machine_arch(),
        cpu_cores=cpu.cores if cpu and cpu.cores else (psutil.cpu_count(logical=True) or 1),
        cpu_utilization=psutil.cpu_percent(interval=None),
        memory_total=cpu.memory_total if cpu else memory.total,
        memory_used=cpu.memory_used if cpu else memory.total - memory.available,
        devices=devices,
        gpufleet_version=__version__,
        engines=engines or {},
    )


MEMORY_GRANULARITY = 64 * 1024 * 1024
UTILIZATION_GRANULARITY = 10.0


def status_fingerprint(status: WorkerStatus) -> str:
    """The status with noisy figures rounded: a heartbeat carries the status only when this changes."""
    coarse = status.model_copy(deep=True)
    coarse.cpu_utilization = None
    coarse.memory_used = status.memory_used // MEMORY_GRANULARITY
    for device in coarse.devices:
        device.memory_used //= MEMORY_GRANULARITY
        device.utilization = None if device.utilization is None else device.utilization // UTILIZATION_GRANULARITY
        device.temperature = None if device.temperature is None else device.temperature // 5
    return coarse.model_dump_json()
