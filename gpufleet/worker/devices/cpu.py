"""The CPU and host RAM, through psutil. Every worker has exactly one CPU device, ``<name>:cpu:0``."""

from __future__ import annotations

import platform

import psutil

from gpufleet.schemas.devices import DeviceReport, DeviceType


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def cpu_vendor(name: str) -> str:
    lowered = name.lower()
    for vendor in ("intel", "amd", "apple", "ampere"):
        if vendor in lowered:
            return vendor
    return "unknown"


class CpuDetector:
    name = "cpu"

    def detect(self) -> list[DeviceReport]:
        memory = psutil.virtual_memory()
        name = cpu_name()
        return [
            DeviceReport(
                index=0,
                type=DeviceType.CPU,
                vendor=cpu_vendor(name),
                name=name,
                memory_total=memory.total,
                memory_used=memory.total - memory.available,
                utilization=psutil.cpu_percent(interval=None),
                cores=psutil.cpu_count(logical=True) or 1,
            )
        ]
