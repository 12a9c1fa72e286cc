"""How a worker row is shown (``WorkerPublic``), and the labels gpufleet sets from its hardware.

Pure: reads a row already loaded with its devices, writes nothing. ``services.workers`` uses it for
every answer about a worker; the automatic labels are recomputed on each registration and
heartbeat, and an admin cannot remove them.
"""

from __future__ import annotations

from typing import Any

from gpufleet.db.tables import Worker
from gpufleet.schemas.devices import DeviceType
from gpufleet.schemas.states import WorkerState
from gpufleet.schemas.workers import SystemReserved, WorkerPublic, WorkerStatus
from gpufleet.server.services.devices import device_public

AUTO_LABELS = ("os", "arch", "gpu-vendor")


def auto_labels(status: WorkerStatus) -> dict[str, str]:
    vendors = sorted({d.vendor.lower().split()[0] for d in status.devices if d.type != DeviceType.CPU})
    return {"os": status.os, "arch": status.arch, "gpu-vendor": "+".join(vendors) or "none"}


def to_public(row: Worker) -> WorkerPublic:
    # ``status`` was validated (WorkerStatus) before it was stored: read the few fields shown, rather
    # than validating every device report again for each worker of a list.
    status: dict[str, Any] = row.status
    gpus = [d for d in row.devices if d.type != DeviceType.CPU.value]
    return WorkerPublic(
        id=row.id,
        name=row.name,
        ip=row.ip,
        port=row.port,
        state=WorkerState(row.state),
        state_message=row.state_message,
        maintenance=row.maintenance,
        labels=row.labels,
        system_reserved=SystemReserved(**row.system_reserved),
        heartbeat_at=row.heartbeat_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        cpu_cores=status["cpu_cores"],
        memory_total=status["memory_total"],
        memory_used=status["memory_used"],
        gpu_count=len(gpus),
        vram_total=sum(d.memory_total for d in gpus),
        vram_used=sum(d.memory_used for d in gpus),
        os=status["os"],
        arch=status["arch"],
        gpufleet_version=status["gpufleet_version"],
        engines=status.get("engines", {}),
        devices=[device_public(d, row.name) for d in row.devices],
    )
