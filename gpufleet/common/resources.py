"""Resources: the memory an instance takes, per device, and the device ids that name those devices.

A device id is ``<worker-name>:<type>:<index>`` (``node1:cuda:0``); every worker has exactly one
CPU device, ``<worker-name>:cpu:0``, which stands for its host RAM. Ids are only ever made by
``device_id``/``cpu_device_id``.

``Resources(ram, vram)``: ``ram`` is host memory on the instance's worker (counted on that
worker's CPU device), ``vram`` bytes per device id (GPUs; a CPU lent over RPC also appears here).
It is the one value type for claims: the scheduler builds them, the snapshot subtracts them, the
services store them on the instance as JSON (``as_json``/``from_json``) with a subordinate's
claim of the same shape for each worker lending devices to a distributed instance.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

CPU = "cpu"


def device_id(worker_name: str, device_type: str, index: int) -> str:
    return f"{worker_name}:{device_type}:{index}"


def cpu_device_id(worker_name: str) -> str:
    return device_id(worker_name, CPU, 0)


@dataclass(frozen=True)
class Resources:
    ram: int = 0
    vram: Mapping[str, int] = field(default_factory=dict)

    def by_device(self, worker_name: str | None) -> dict[str, int]:
        """Device id → bytes, the RAM counted on the worker's CPU device (dropped without a worker)."""
        result = dict(self.vram)
        if self.ram and worker_name:
            cpu = cpu_device_id(worker_name)
            result[cpu] = result.get(cpu, 0) + self.ram
        return result

    def as_json(self) -> dict[str, Any]:
        return {"ram": self.ram, "vram": dict(self.vram)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Resources:
        """From a stored claim (extra keys such as ``offload_layers`` are ignored); empty for None."""
        if not data:
            return cls()
        return cls(int(data.get("ram") or 0), {d: int(v) for d, v in (data.get("vram") or {}).items()})


# Resources held on one worker: (worker name, what is held there).
Held = tuple[str | None, Resources]


def held_by_instance(
    worker_name: str | None, claim: Mapping[str, Any] | None, subordinates: Iterable[Mapping[str, Any]] | None
) -> list[Held]:
    """An instance's stored claim and its subordinates' claims, each with the worker that holds it."""
    held: list[Held] = [(worker_name, Resources.from_json(claim))]
    for sub in subordinates or []:
        held.append((sub.get("worker_name"), Resources.from_json(sub.get("claim"))))
    return held


def total_by_device(held: Iterable[Held]) -> dict[str, int]:
    """Bytes held per device id, summed."""
    totals: dict[str, int] = defaultdict(int)
    for worker_name, resources in held:
        for device, amount in resources.by_device(worker_name).items():
            totals[device] += amount
    return dict(totals)
