"""Device rows of a worker, kept in step with what the worker reports."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gpufleet.common.resources import device_id
from gpufleet.db.session import Database
from gpufleet.db.tables import Device, Worker
from gpufleet.schemas.devices import DevicePublic, DeviceReport, DeviceType

CPU_SORT_KEY = 1_000_000  # CPU after every GPU


def sync_devices(worker: Worker, reports: list[DeviceReport]) -> None:
    """Make ``worker.devices`` match ``reports``: update in place, add new, drop vanished."""
    wanted = {device_id(worker.name, r.type.value, r.index): r for r in reports}
    for row in list(worker.devices):
        if row.id not in wanted:
            worker.devices.remove(row)
    existing = {row.id: row for row in worker.devices}
    for identifier, report in wanted.items():
        found = existing.get(identifier)
        if found is None:
            row = Device(id=identifier, worker_id=worker.id, index=report.index, type=report.type.value)
            worker.devices.append(row)
        else:
            row = found
        row.vendor = report.vendor
        row.name = report.name
        row.uuid = report.uuid
        row.memory_total = report.memory_total
        row.memory_used = report.memory_used
        row.compute_capability = report.compute_capability
        row.unified_memory = report.unified_memory
        row.simulated = report.simulated
        row.utilization = report.utilization
        row.temperature = report.temperature
        row.cores = report.cores
        row.sort_key = CPU_SORT_KEY + report.index if report.type == DeviceType.CPU else report.index


def rename_devices(worker: Worker, reports: list[DeviceReport]) -> None:
    """Device ids embed the worker name: after a rename, rebuild the rows under the new ids."""
    worker.devices.clear()
    sync_devices(worker, reports)


def device_public(row: Device, worker_name: str) -> DevicePublic:
    return DevicePublic(
        id=row.id,
        worker_id=row.worker_id,
        worker_name=worker_name,
        index=row.index,
        type=DeviceType(row.type),
        vendor=row.vendor,
        name=row.name,
        uuid=row.uuid,
        memory_total=row.memory_total,
        memory_used=row.memory_used,
        compute_capability=row.compute_capability,
        unified_memory=row.unified_memory,
        simulated=row.simulated,
        utilization=row.utilization,
        temperature=row.temperature,
        cores=row.cores,
        updated_at=row.updated_at,
    )


async def list_devices(db: Database, worker_id: int | None = None) -> list[DevicePublic]:
    query = select(Device, Worker.name).join(Worker, Worker.id == Device.worker_id)
    if worker_id is not None:
        query = query.where(Device.worker_id == worker_id)
    async with db.read() as session:
        rows = (await session.execute(query.order_by(Worker.name, Device.sort_key))).all()
    return [device_public(device, name) for device, name in rows]


async def existing_device_ids(session: AsyncSession, ids: list[str]) -> set[str]:
    rows = (await session.execute(select(Device.id).where(Device.id.in_(ids)))).scalars().all()
    return set(rows)
