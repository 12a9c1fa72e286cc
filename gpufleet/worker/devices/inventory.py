"""Simulated devices from a ``--device-inventory`` JSON file (capacity planning, scale tests).

Format::

    {"cpu": {"cores": 64, "memory": <bytes>,             # optional: real host values otherwise
             "host": false},                             # true: this host's CPU, offering only <memory>
     "gpus": [{"vendor": "nvidia", "name": "NVIDIA H100 80GB HBM3", "type": "cuda",
               "memory": <bytes>, "compute_capability": "9.0", "unified_memory": false}]}

Every device read from it is marked ``simulated``: a worker never starts an
engine on one. Simulated devices report no memory in use. The one exception is a CPU with
``"host": true``: it is this machine's own CPU, of which gpufleet may use only ``memory`` bytes
(placement counts that much; engines really run on it), e.g. to keep a shared machine's RAM for
its other work, or to test eviction with small models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpufleet.common.errors import InvalidInput
from gpufleet.schemas.devices import DeviceReport, DeviceType
from gpufleet.worker.devices.cpu import CpuDetector


class InventoryError(InvalidInput, ValueError):
    """The inventory file cannot be used; the message names the file and the problem."""


class InventoryCpu(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cores: int = Field(ge=1)
    memory: int = Field(ge=1)
    name: str = "Simulated CPU"
    host: bool = False  # this host's real CPU, offering ``memory`` bytes: engines run on it


class InventoryGpu(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vendor: str = Field(min_length=1)
    name: str = Field(min_length=1)
    type: Literal["cuda", "rocm", "metal"]
    memory: int = Field(ge=1)
    compute_capability: str | None = None
    unified_memory: bool | None = None


class Inventory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpu: InventoryCpu | None = None
    gpus: list[InventoryGpu] = Field(default_factory=list)


def load_inventory(path: Path) -> Inventory:
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise InventoryError(f"cannot read device inventory {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise InventoryError(f"device inventory {path} is not valid JSON: {exc}") from exc
    try:
        return Inventory.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()[:5])
        raise InventoryError(f"device inventory {path} is invalid: {problems}") from exc


class InventoryDetector:
    """Replaces hardware detection with the devices listed in a file."""

    name = "inventory"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.inventory = load_inventory(path)

    def detect(self) -> list[DeviceReport]:
        reports: list[DeviceReport] = []
        per_type: dict[str, int] = {}
        for gpu in self.inventory.gpus:
            index = per_type.get(gpu.type, 0)
            per_type[gpu.type] = index + 1
            reports.append(
                DeviceReport(
                    index=index,
                    type=DeviceType(gpu.type),
                    vendor=gpu.vendor,
                    name=gpu.name,
                    memory_total=gpu.memory,
                    memory_used=0,
                    compute_capability=gpu.compute_capability,
                    unified_memory=gpu.unified_memory if gpu.unified_memory is not None else gpu.type == "metal",
                    simulated=True,
                )
            )
        if self.inventory.cpu is not None:
            cpu = self.inventory.cpu
            reports.append(
                DeviceReport(
                    index=0,
                    type=DeviceType.CPU,
                    vendor="host" if cpu.host else "simulated",
                    name=cpu.name,
                    memory_total=cpu.memory,
                    memory_used=0,
                    cores=cpu.cores,
                    simulated=not cpu.host,
                )
            )
        else:
            reports.extend(CpuDetector().detect())
        return reports
