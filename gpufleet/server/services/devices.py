"""Device rows of a worker, kept in step with what the worker reports."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gpufleet.common.resources import device_id, held_by_instance, total_by_device
from gpufleet.db.session import Database
from gpufleet.db.tables import Device, ModelInstance, Worker
from gpufleet.schemas.devices import DeviceDetail, DeviceHolder, DevicePublic, DeviceReport, DeviceType
from gpufleet.schemas.states import InstanceState
from gpufleet.server.listing import EVERY_ROW, ListParams, count

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


async def holders_by_device(session: AsyncSession) -> dict[str, list[DeviceHolder]]:
    """Every placed instance's claim, per device it takes memory from (its subordinates' too)."""
    query = select(
        ModelInstance.id,
        ModelInstance.name,
        ModelInstance.model_name,
        ModelInstance.state,
        ModelInstance.worker_name,
        ModelInstance.claim,
        ModelInstance.subordinates,
    ).where(ModelInstance.worker_id.is_not(None), ModelInstance.state != InstanceState.PENDING.value)
    result: dict[str, list[DeviceHolder]] = defaultdict(list)
    for instance_id, name, model_name, state, worker_name, claim, subordinates in (await session.execute(query)).all():
        held = total_by_device(held_by_instance(worker_name, claim, subordinates))
        for device, amount in held.items():
            result[device].append(
                DeviceHolder(
                    instance_id=instance_id, instance_name=name, model_name=model_name, state=state, bytes=amount
                )
            )
    return result


async def list_devices(
    db: Database, worker_id: int | None = None, params: ListParams = EVERY_ROW
) -> tuple[list[DeviceDetail], int | None]:
    """Devices with the bytes allocated on each and the instances holding them (two queries in all).

    Filters: ``state`` and ``label`` are the worker's, ``q`` the device id (``node1:cuda:0``) or name."""
    query = select(Device, Worker.name).join(Worker, Worker.id == Device.worker_id)
    if worker_id is not None:
        query = query.where(Device.worker_id == worker_id)
    query = params.filtered(query, state=Worker.state, labels=Worker.labels, name=Device.id + " " + Device.name)
    async with db.read() as session:
        total = await count(session, query) if params.limit is not None else None
        rows = (await session.execute(params.paged(query.order_by(Worker.name, Device.sort_key)))).all()
        holders = await holders_by_device(session)
    result = []
    for device, name in rows:
        held = holders.get(device.id, [])
        public = device_public(device, name).model_dump()
        result.append(DeviceDetail(**public, allocated=sum(h.bytes for h in held), holders=held))
    return result, total


async def existing_device_ids(session: AsyncSession, ids: list[str]) -> set[str]:
    rows = (await session.execute(select(Device.id).where(Device.id.in_(ids)))).scalars().all()
    return set(rows)
