"""Named hardware for scheduler tests, built the way ``--device-inventory`` describes it."""

from __future__ import annotations

from gpufleet.common.units import GiB
from gpufleet.scheduler.snapshot import ClusterSnapshot, DeviceView, WorkerView

RAM_RESERVED = 2 * GiB
VRAM_RESERVED = 1 * GiB


def worker(
    name: str,
    gpus: list[tuple[str, str, int]],
    ram: int,
    *,
    state: str = "ready",
    labels: dict[str, str] | None = None,
    unified: bool = False,
    worker_id: int | None = None,
    gpu_used: int = 0,
) -> WorkerView:
    """``gpus``: (type, name, memory) per GPU."""
    wid = worker_id if worker_id is not None else abs(hash(name)) % 10_000_000
    devices = tuple(
        DeviceView(
            f"{name}:{kind}:{i}",
            wid,
            name,
            i,
            kind,
            model,
            memory,
            VRAM_RESERVED,
            gpu_used,
            0,
            unified_memory=unified,
            simulated=True,
        )
        for i, (kind, model, memory) in enumerate(gpus)
    )
    cpu = DeviceView(f"{name}:cpu:0", wid, name, 0, "cpu", "CPU", ram, RAM_RESERVED, 0, 0, simulated=True)
    vendor = {"cuda": "nvidia", "rocm": "amd", "metal": "apple"}.get(gpus[0][0], "none") if gpus else "none"
    all_labels = {"os": "linux", "arch": "amd64", "gpu-vendor": vendor, **(labels or {})}
    return WorkerView(wid, name, state, all_labels, devices, cpu)


def h100x8(name: str, **kwargs: object) -> WorkerView:
    return worker(name, [("cuda", "NVIDIA H100 80GB HBM3", 80 * GiB)] * 8, 2048 * GiB, **kwargs)  # type: ignore[arg-type]


def rtx4090x4(name: str, **kwargs: object) -> WorkerView:
    return worker(name, [("cuda", "NVIDIA GeForce RTX 4090", 24 * GiB)] * 4, 128 * GiB, **kwargs)  # type: ignore[arg-type]


def m2_ultra(name: str) -> WorkerView:
    return worker(
        name,
        [("metal", "Apple M2 Ultra", 192 * GiB)],
        192 * GiB,
        unified=True,
        labels={"os": "darwin", "arch": "arm64"},
    )


def cpu_only(name: str, ram: int = 64 * GiB) -> WorkerView:
    return worker(name, [], ram)


def cluster(*workers: WorkerView) -> ClusterSnapshot:
    return ClusterSnapshot(tuple(workers))
