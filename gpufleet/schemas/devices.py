"""Devices: one per GPU and one for the CPU of each worker."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from gpufleet.schemas.common import PublicModel


class DeviceType(StrEnum):
    CUDA = "cuda"
    ROCM = "rocm"
    METAL = "metal"
    CPU = "cpu"


class DeviceReport(BaseModel):
    """What a worker's detector found; sent in the worker status.

    ``memory_*`` are bytes. For the CPU device ``memory_total`` is the host RAM.
    ``memory_used`` is what is in use by anyone, gpufleet's engines included.
    """

    index: int = Field(ge=0)
    type: DeviceType
    vendor: str
    name: str
    uuid: str | None = None
    memory_total: int = Field(ge=0)
    memory_used: int = Field(0, ge=0)
    compute_capability: str | None = None
    unified_memory: bool = False
    simulated: bool = False
    utilization: float | None = None
    temperature: float | None = None
    cores: int | None = None  # CPU devices: logical cores


class DevicePublic(PublicModel):
    id: str  # "<worker-name>:<type>:<index>", e.g. node1:cuda:0
    worker_id: int
    worker_name: str
    index: int
    type: DeviceType
    vendor: str
    name: str
    uuid: str | None
    memory_total: int
    memory_used: int
    compute_capability: str | None
    unified_memory: bool
    simulated: bool
    utilization: float | None
    temperature: float | None
    cores: int | None
    updated_at: datetime


class DeviceHolder(BaseModel):
    """An instance that holds memory on a device, and how much (its claim, as placed)."""

    instance_id: int
    instance_name: str
    model_name: str
    state: str
    bytes: int


class DeviceDetail(DevicePublic):
    """A device with what gpufleet has *allocated* on it (the claims of its placed instances) beside
    what is *used* (``memory_used``, live from the worker, by anyone). ``GET /api/devices`` only."""

    allocated: int = 0
    holders: list[DeviceHolder] = Field(default_factory=list)
