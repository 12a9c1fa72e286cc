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
    """The static part of a snapshot: devices in one flat order, and who owns what.

    Each worker's GPUs come first, then its CPU, workers in name order, so a worker's devices are
    one contiguous run and every index is arithmetic on the GPU counts (no per-device lookups).
    Built in a few passes over the devices: at 10,000 workers × 9 devices it is the dominant cost
    of a snapshot, paid once per scheduling pass.
    """

    def __init__(self, workers: tuple[WorkerView, ...]) -> None:
        workers = tuple(sorted(workers, key=lambda w: w.name))  # array order = name order: ties break by name
        self.workers = workers
        self.worker_position = {w.id: i for i, w in enumerate(workers)}
        self.worker_by_name = {w.name: w for w in workers}
        devices = [d for w in workers for d in (*w.gpus, w.cpu)]  # = w.devices
        self.devices = devices
        self.device_index = dict(zip([d.id for d in devices], range(len(devices)), strict=True))
        gpu_count = np.asarray([len(w.gpus) for w in workers], dtype=np.int64)
        first = np.cumsum(gpu_count + 1) - (gpu_count + 1)  # each worker's first device
        self.owner = np.repeat(np.arange(len(workers), dtype=np.int64), gpu_count + 1)
        self.cpu_of_worker = first + gpu_count
        columns = np.arange(int(gpu_count.max(initial=0)), dtype=np.int64)
        self.gpu_matrix = np.where(columns < gpu_count[:, None], first[:, None] + columns, -1)
        self.usable = np.asarray([d.memory_total - d.reserved - d.used_by_others for d in devices], dtype=np.int64)
        codes: dict[str, int] = {}
        self.type_code = np.asarray([codes.setdefault(d.type, len(codes)) for d in devices], dtype=np.int64)
        self.type_names = tuple(codes)  # type_names[type_code[i]] == devices[i].type
        self.is_gpu = self.type_code != codes.get("cpu", -1)
        unified = np.asarray([d.unified_memory for d in devices], dtype=bool)
        unified_workers = np.bincount(self.owner[unified], minlength=len(workers)) > 0
        self.pooled = unified_workers[self.owner]
        self.cache: dict[object, object] = {}  # derived per-layout arrays (e.g. device masks per backend)


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
        claimed_by_worker = np.bincount(layout.owner, weights=self.claimed_array, minlength=len(layout.workers))
        pool = np.maximum(layout.usable[layout.cpu_of_worker] - claimed_by_worker.astype(np.int64), 0)
        return np.where(layout.pooled, np.minimum(free, pool[layout.owner]), free)

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
