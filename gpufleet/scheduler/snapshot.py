"""ClusterSnapshot: the workers, their devices and what is claimed on them, as of one moment.

Invariants:
- Immutable. ``with_claim`` returns a new snapshot that shares the device records and adds a small
  overlay of extra claims, so placing replica after replica (or previewing them) never copies
  thousands of devices.
- ``free(device)`` = total − system_reserved − claims of gpufleet instances − memory used by
  processes gpufleet does not own (as reported live by the worker). Never negative.
- A unified-memory GPU (Apple Silicon) shares one pool with its worker's RAM: a claim on either
  reduces what both can give.
- Plugins read snapshots; they never open a database session or a connection. ``services/scheduling``
  builds snapshots from database rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


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


@dataclass(frozen=True)
class ClusterSnapshot:
    workers: tuple[WorkerView, ...]
    extra_claims: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def free(self, device: DeviceView) -> int:
        """Bytes this device can still give to a new instance."""
        free = device.memory_total - device.reserved - device.used_by_others - device.claimed
        free -= self.extra_claims.get(device.id, 0)
        if device.unified_memory or (device.type == "cpu" and self._pool_shared(device.worker_id)):
            free = min(free, self._pool_free(device.worker_id))
        return max(free, 0)

    def claimed(self, device: DeviceView) -> int:
        return device.claimed + self.extra_claims.get(device.id, 0)

    def with_claim(self, claims: Mapping[str, int]) -> ClusterSnapshot:
        """A snapshot in which ``claims`` (device id → bytes) are also taken."""
        merged = dict(self.extra_claims)
        for device_id, amount in claims.items():
            if amount:
                merged[device_id] = merged.get(device_id, 0) + amount
        result = ClusterSnapshot(self.workers, MappingProxyType(merged))
        for cache in ("_by_name_cache", "_by_id_cache", "_devices_cache"):  # same workers: share the lookups
            if cache in self.__dict__:
                object.__setattr__(result, cache, self.__dict__[cache])
        return result

    def worker(self, name: str) -> WorkerView | None:
        return self._by_name().get(name)

    def device(self, device_id: str) -> DeviceView | None:
        return self._devices().get(device_id)

    # --- unified memory: a worker whose GPU shares the host RAM ---------------------------------
    def _pool_shared(self, worker_id: int) -> bool:
        worker = self._by_id().get(worker_id)
        return worker is not None and any(g.unified_memory for g in worker.gpus)

    def _pool_free(self, worker_id: int) -> int:
        """RAM left in a unified pool: its total minus what the CPU side and the GPU side hold."""
        worker = self._by_id()[worker_id]
        cpu = worker.cpu
        pool = cpu.memory_total - cpu.reserved - cpu.used_by_others
        for device in worker.devices:
            pool -= device.claimed + self.extra_claims.get(device.id, 0)
        return pool

    # --- lookups, built once per snapshot object --------------------------------------------------
    def _by_name(self) -> dict[str, WorkerView]:
        cached: dict[str, WorkerView] | None = self.__dict__.get("_by_name_cache")
        if cached is None:
            cached = {w.name: w for w in self.workers}
            object.__setattr__(self, "_by_name_cache", cached)
        return cached

    def _by_id(self) -> dict[int, WorkerView]:
        cached: dict[int, WorkerView] | None = self.__dict__.get("_by_id_cache")
        if cached is None:
            cached = {w.id: w for w in self.workers}
            object.__setattr__(self, "_by_id_cache", cached)
        return cached

    def _devices(self) -> dict[str, DeviceView]:
        cached: dict[str, DeviceView] | None = self.__dict__.get("_devices_cache")
        if cached is None:
            cached = {d.id: d for w in self.workers for d in w.devices}
            object.__setattr__(self, "_devices_cache", cached)
        return cached
