"""Workers: registration, heartbeats, admin updates and the public view."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, IPvAnyAddress

from gpufleet.schemas.common import Labels, PublicModel, RequestModel, WorkerName
from gpufleet.schemas.devices import DevicePublic, DeviceReport
from gpufleet.schemas.states import WorkerState


class SystemReserved(BaseModel):
    ram: int = Field(ge=0)  # bytes kept free on the host
    vram: int = Field(ge=0)  # bytes kept free on every GPU


class WorkerStatus(BaseModel):
    """What the worker reports about its machine. Sent at registration and whenever it changes."""

    hostname: str
    os: str  # linux | darwin | windows
    arch: str  # amd64 | arm64 | ...
    cpu_cores: int = Field(ge=0)
    cpu_utilization: float | None = None
    memory_total: int = Field(ge=0)
    memory_used: int = Field(ge=0)
    devices: list[DeviceReport]
    gpufleet_version: str
    engines: dict[str, str] = Field(default_factory=dict)  # engine name -> version (engine issue)


class WorkerRegister(RequestModel):
    name: WorkerName
    ip: IPvAnyAddress
    port: int = Field(ge=1, le=65535)
    labels: Labels = Field(default_factory=dict)
    system_reserved: SystemReserved
    status: WorkerStatus
    # The secret the server must present on the worker's private routes (instance logs). Stored by
    # the server, never returned by the API; absent from workers older than it (their logs cannot
    # be read through the server).
    api_token: str | None = Field(default=None, min_length=32, max_length=128, repr=False)
    # The worker's own credential (from its data dir's worker.json), sent beside the cluster token:
    # it says which worker this is, so that worker is re-attached, renamed or moved to this name and
    # address (a credential alone, as the bearer, may not do that). Never stored or returned.
    credential: str | None = Field(default=None, min_length=1, max_length=256, repr=False)


class WorkerHeartbeat(RequestModel):
    """A heartbeat is small: ``status`` is only sent when it changed since the last one."""

    status: WorkerStatus | None = None
    leaving: bool = False  # the worker is shutting down cleanly: mark it not_ready now


class WorkerUpdate(RequestModel):
    """Admin changes. ``state`` may only enter or leave ``maintenance``."""

    labels: Labels | None = None
    state: Literal["maintenance", "ready"] | None = None


class WorkerPublic(PublicModel):
    id: int
    name: str
    ip: str
    port: int
    state: WorkerState
    state_message: str | None
    # Drained by an admin: nothing new is placed here. ``state`` shows ``maintenance`` only while the
    # worker is alive; this flag stays visible when it is ``not_ready`` too.
    maintenance: bool = False
    labels: dict[str, str]
    system_reserved: SystemReserved
    heartbeat_at: datetime | None
    created_at: datetime
    updated_at: datetime
    cpu_cores: int
    memory_total: int
    memory_used: int
    gpu_count: int
    vram_total: int
    vram_used: int
    os: str | None
    arch: str | None
    gpufleet_version: str | None
    engines: dict[str, str]
    devices: list[DevicePublic]


class WorkerRegistered(BaseModel):
    """Answer to a registration: the worker's own credential, returned only here."""

    worker: WorkerPublic
    credential: str | None  # None when the worker re-registered with its stored credential
    # The gpufleet version the server runs (``common.version_skew``); absent from older servers.
    server_version: str | None = None


class WorkerJoin(BaseModel):
    """What an admin needs to add a machine: run ``command`` there (``server_url`` as this request saw it)."""

    server_url: str
    token: str
    command: str


class HeartbeatAck(BaseModel):
    """The answer to a heartbeat: the worker's state as the server sees it (and why)."""

    id: int
    state: WorkerState
    state_message: str | None = None
