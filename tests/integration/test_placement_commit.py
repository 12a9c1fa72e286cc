"""A placement commits only onto the workers it was decided on (``services/scheduling.commit``): a
worker renamed (or whose state changed) since the scheduler's snapshot fails the compare-and-swap,
so no instance is left naming a worker by a name it no longer has."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpufleet.common.errors import InvalidTransition
from gpufleet.common.resources import Resources, cpu_device_id
from gpufleet.db.migrate import upgrade
from gpufleet.db.session import Database
from gpufleet.db.tables import ModelInstance, Worker
from gpufleet.scheduler.framework import Mode, Placement
from gpufleet.scheduler.snapshot import DeviceView, WorkerView
from gpufleet.schemas.states import InstanceState, WorkerState
from gpufleet.server.services.scheduling import commit


def _placement(worker_id: int, name: str) -> Placement:
    cpu = DeviceView(cpu_device_id(name), worker_id, name, 0, "cpu", "CPU", 1 << 30, 0, 0, 0)
    view = WorkerView(worker_id, name, WorkerState.READY.value, {}, (), cpu)
    return Placement(Mode.CPU, view, (cpu.id,), Resources(ram=1 << 20), 0, 1)


async def _setup(db: Database) -> tuple[int, int]:
    async with db.transaction() as session:
        worker = Worker(
            name="before",
            ip="127.0.0.1",
            port=1,
            state=WorkerState.READY.value,
            labels={},
            system_reserved={},
            status={},
            credential_hash="y" * 64,
        )
        instance = ModelInstance(name="m-1", model_name="m", state=InstanceState.PENDING.value)
        session.add_all([worker, instance])
        await session.flush()
        return worker.id, instance.id


@pytest.mark.parametrize("change", ["renamed", "lost"])
async def test_a_placement_onto_a_worker_changed_since_the_snapshot_is_refused(tmp_path: Path, change: str) -> None:
    db = Database(f"sqlite:///{tmp_path / 'gpufleet.db'}")
    await upgrade(db)
    try:
        worker_id, instance_id = await _setup(db)
        placement = _placement(worker_id, "before")  # what the scheduler's snapshot saw
        async with db.transaction() as session:  # meanwhile
            worker = await session.get(Worker, worker_id)
            assert worker is not None
            if change == "renamed":
                worker.name = "after"
            else:
                worker.state = WorkerState.NOT_READY.value
        with pytest.raises(InvalidTransition):
            async with db.transaction() as session:
                instance = await session.get(ModelInstance, instance_id)
                assert instance is not None
                await commit(session, instance, placement)
        async with db.read() as session:
            instance = await session.get(ModelInstance, instance_id)
            assert instance is not None and instance.state == InstanceState.PENDING.value

        async with db.transaction() as session:  # as the snapshot saw it: it commits
            worker = await session.get(Worker, worker_id)
            assert worker is not None
            worker.name, worker.state = "before", WorkerState.READY.value
        async with db.transaction() as session:
            instance = await session.get(ModelInstance, instance_id)
            assert instance is not None
            await commit(session, instance, placement)
        async with db.read() as session:
            instance = await session.get(ModelInstance, instance_id)
            assert instance is not None and instance.worker_name == "before"
    finally:
        await db.dispose()
