"""ClusterSnapshot: the workers, their devices and what is claimed on them, as of one moment.

Invariants:
- Immutable. ``with_claim`` returns a new snapshot that shares everything static (workers,
  devices, their usable memory) and copies only the claimed-bytes array, so placing replica after
  replica (or previewing them) stays cheap at thousands of devices.
- ``free(device)`` = total − system_reserved − claims of gpufleet instances − memory used by
  processes gpufleet does not own (as reported live by the worker). Never negative.
- A unified-memory GPU (Apple Silicon) shares one pool with its worker's RAM: a claim on either
  reduces what both can give.
- Plugins read snapshots; they never open a database session or a connection. Per-device figures
  are also available as numpy arrays (``free_array``, ``usable``, …, in ``device_index`` order),
  which is how the candidate kinds stay fast on large clusters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DeviceView:
    id: str  # <worker-name>:<type>:<index>
    worker_id: int
    worker_name: str
    index: int
    type: str  # cuda | rocm | metal | cpu
    name: str
    memory_total: int
    reserved: int  # system_reserved for this device
    used_by_others: int  # memory in use by processes gpufleet does not run
    claimed: int  # by gpufleet instances already placed
    unified_memory: bool = False
    simulated: bool = False

    @property
    def is_gpu(self) -> bool:
        return self.type != "cpu"


@dataclass(frozen=True)
class WorkerView:
    id: int
    name: str
    state: str
    labels: Mapping[str, str]
    gpus: tuple[DeviceView, ...]
    cpu: DeviceView
    arch: str = "amd64"

    @property
    def devices(self) -> tuple[DeviceView, ...]:
        return (*self.gpus, self.cpu)


class _Layout:
    """The static part of a snapshot: devices in one flat order, and who owns what."""

    def __init__(self, workers: tuple[WorkerView, ...]) -> None:
        workers = tuple(sorted(workers, key=lambda w: w.name))  # array order = name order: ties break by name
        self.workers = workers
        self.worker_position = {w.id: i for i, w in enumerate(workers)}
        self.worker_by_name = {w.name: w for w in workers}
        devices = [d for w in workers for d in w.devices]
        self.devices = devices
        self.device_index = {d.id: i for i, d in enumerate(devices)}
        self.owner = np.asarray([self.worker_position[d.worker_id] for d in devices], dtype=np.int64)
        self.usable = np.asarray([d.memory_total - d.reserved - d.used_by_others for d in devices], dtype=np.int64)
        self.is_gpu = np.asarray([d.is_gpu for d in devices], dtype=bool)
        self.cpu_of_worker = np.asarray([self.device_index[w.cpu.id] for w in workers], dtype=np.int64)
        widest = max((len(w.gpus) for w in workers), default=0)
        self.gpu_matrix = np.full((len(workers), widest), -1, dtype=np.int64)
        for row, worker in enumerate(workers):
            for column, gpu in enumerate(worker.gpus):
                self.gpu_matrix[row, column] = self.device_index[gpu.id]
        self.cache: dict[object, object] = {}  # derived per-layout arrays (e.g. device masks per backend)
        unified_workers = {self.worker_position[d.worker_id] for d in devices if d.unified_memory}
        self.pooled = np.asarray([self.worker_position[d.worker_id] in unified_workers for d in devices], dtype=bool)


class ClusterSnapshot:
    def __init__(
        self, workers: tuple[WorkerView, ...], *, _layout: _Layout | None = None, _claimed: np.ndarray | None = None
    ) -> None:
        self.layout = _layout or _Layout(tuple(workers))
        self.workers = self.layout.workers
        self.claimed_array = (
            _claimed if _claimed is not None else np.asarray([d.claimed for d in self.layout.devices], dtype=np.int64)
        )
        self._free: np.ndarray | None = None

    # --- per device ---------------------------------------------------------------------------
    @property
    def usable(self) -> np.ndarray:
        return self.layout.usable

    @property
    def free_array(self) -> np.ndarray:
        """Free bytes of every device, in ``layout.devices`` order."""
        if self._free is None:
            free = np.maximum(self.layout.usable - self.claimed_array, 0)
            if self.layout.pooled.any():
                free = self._apply_pools(free)
            self._free = free
        return self._free

    def _apply_pools(self, free: np.ndarray) -> np.ndarray:
        """A unified-memory worker: every device's free memory is capped by the pool's."""
        layout = self.layout
        result = free.copy()
        for position in np.unique(layout.owner[layout.pooled]):
            members = layout.owner == position
            cpu = layout.cpu_of_worker[position]
            pool = layout.usable[cpu] - self.claimed_array[members].sum()
            result[members] = np.minimum(result[members], max(int(pool), 0))
        return result

    def free(self, device: DeviceView) -> int:
        return int(self.free_array[self.layout.device_index[device.id]])

    def claimed(self, device: DeviceView) -> int:
        return int(self.claimed_array[self.layout.device_index[device.id]])

    def with_claim(self, claims: Mapping[str, int]) -> ClusterSnapshot:
        """A snapshot in which ``claims`` (device id → bytes) are also taken."""
        claimed = self.claimed_array.copy()
        for device_id, amount in claims.items():
            index = self.layout.device_index.get(device_id)
            if index is not None:
                claimed[index] += amount
        return ClusterSnapshot(self.workers, _layout=self.layout, _claimed=claimed)

    # --- lookups ------------------------------------------------------------------------------
    def worker(self, name: str) -> WorkerView | None:
        return self.layout.worker_by_name.get(name)

    def device(self, device_id: str) -> DeviceView | None:
        index = self.layout.device_index.get(device_id)
        return None if index is None else self.layout.devices[index]

    def position(self, worker: WorkerView) -> int:
        return self.layout.worker_position[worker.id]

    def gpu_usage(self) -> tuple[np.ndarray, np.ndarray]:
        """Per worker (in ``workers`` order): bytes claimed on its GPUs, and their usable bytes."""
        cached = self.__dict__.get("_gpu_usage")
        if cached is None:
            layout = self.layout
            size = len(layout.workers)
            gpus = layout.is_gpu
            claimed = np.bincount(layout.owner[gpus], weights=self.claimed_array[gpus], minlength=size)
            usable = np.bincount(layout.owner[gpus], weights=layout.usable[gpus], minlength=size)
            cached = (claimed, usable)
            self.__dict__["_gpu_usage"] = cached
        return cached
