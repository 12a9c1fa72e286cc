"""``GET /metrics`` of the server: cluster state as Prometheus gauges, read fresh from the database."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from sqlalchemy import func, select

from gpufleet.common.resources import held_by_instance, total_by_device
from gpufleet.db.session import Database
from gpufleet.db.tables import Device, ModelInstance, Worker
from gpufleet.schemas.states import InstanceState, WorkerState


async def render(db: Database, leader: bool) -> bytes:
    """``leader``: whether the answering server leads (``gpufleet_server_leader``, 1 or 0)."""
    registry = CollectorRegistry()
    Gauge(
        "gpufleet_server_leader", "1 if this server runs the scheduler and controllers, else 0", registry=registry
    ).set(1 if leader else 0)
    workers = Gauge("gpufleet_workers", "Workers by state", ["state"], registry=registry)
    instances = Gauge("gpufleet_instances", "Model instances by state", ["state"], registry=registry)
    memory = Gauge(
        "gpufleet_device_memory_bytes",
        "Device memory: total, used (by anyone), claimed by gpufleet",
        ["worker", "device", "kind"],
        registry=registry,
    )
    async with db.read() as session:
        worker_counts = dict((await session.execute(select(Worker.state, func.count()).group_by(Worker.state))).all())
        instance_counts = dict(
            (await session.execute(select(ModelInstance.state, func.count()).group_by(ModelInstance.state))).all()
        )
        devices = (await session.execute(select(Device, Worker.name).join(Worker, Worker.id == Device.worker_id))).all()
        claims = (
            await session.execute(
                select(ModelInstance.worker_name, ModelInstance.claim, ModelInstance.subordinates).where(
                    ModelInstance.claim.is_not(None)
                )
            )
        ).all()
    for worker_state in WorkerState:
        workers.labels(worker_state.value).set(worker_counts.get(worker_state.value, 0))
    for instance_state in InstanceState:
        instances.labels(instance_state.value).set(instance_counts.get(instance_state.value, 0))
    claimed = total_by_device(held for w, c, s in claims for held in held_by_instance(w, c, s))
    for device, worker_name in devices:
        memory.labels(worker_name, device.id, "total").set(device.memory_total)
        memory.labels(worker_name, device.id, "used").set(device.memory_used)
        memory.labels(worker_name, device.id, "claimed").set(claimed.get(device.id, 0))
    return generate_latest(registry)
