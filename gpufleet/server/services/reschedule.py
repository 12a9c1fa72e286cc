"""Moving a lost worker's instances off it, so the scheduler places them on live workers.

The instances go back to ``pending`` (the same row, through ``lifecycle.transition``), their
placement cleared and their message saying which worker was lost and since when; an instance
whose deployment is gone is deleted instead. An instance that only borrowed the lost worker's
devices over RPC moves too: it cannot serve without them. The worker's own agent, if it returns,
no longer finds these instances in its watch listing and stops their engines.

Everything is decided in one transaction, on the rows as they are then: a worker that heartbeats
again before it commits keeps its instances (the compare-and-swap on each instance and the check
of the worker's state and last heartbeat make the two outcomes exclusive).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select

from gpufleet.common.clock import as_utc, utcnow
from gpufleet.db.session import Database
from gpufleet.db.tables import ModelInstance, Worker
from gpufleet.schemas.states import InstanceState, WorkerState
from gpufleet.server.services import instances as instance_service

S = InstanceState
# States of an instance whose engine is (or was to be) on the lost worker: everything but waiting and stopping.
MOVABLE = (S.SCHEDULED, S.DOWNLOADING, S.STARTING, S.RUNNING, S.UNREACHABLE, S.ERROR)


def due_at(heartbeat_at: datetime | None, started_at: datetime, stale_window: float, grace: float) -> datetime:
    """When a worker silent since ``heartbeat_at`` has been lost for ``grace`` seconds.

    ``max(last heartbeat, server start) + stale window + grace``: the stale window (3 heartbeat
    intervals) is when the worker was judged lost; counting from the server's start at the latest
    gives every worker the full grace again after a restart, whose lost heartbeats were never stored.
    """
    seen = max(as_utc(heartbeat_at), started_at) if heartbeat_at is not None else started_at
    return seen + timedelta(seconds=stale_window + grace)


async def move_off(db: Database, worker_id: int, deadline: Callable[[datetime | None], datetime]) -> list[str] | None:
    """Send the instances of a worker lost past ``deadline(its last heartbeat)`` back to pending.

    Returns the names of the instances moved, or None when the worker is back, gone, or not yet due.
    """
    async with db.transaction() as session:
        # Locked (PostgreSQL): a heartbeat reviving the worker waits for this decision, or this one for it.
        worker = await session.get(Worker, worker_id, with_for_update=True)
        if worker is None or worker.state != WorkerState.NOT_READY or utcnow() < deadline(worker.heartbeat_at):
            return None
        seen = f"{as_utc(worker.heartbeat_at):%Y-%m-%d %H:%M:%S} UTC" if worker.heartbeat_at else "never"
        reason = (
            f"moved off worker {worker.name}: lost (not_ready, last heartbeat {seen}) for longer than the "
            "reschedule grace"
        )
        rows = (
            (await session.execute(select(ModelInstance).where(ModelInstance.state.in_([s.value for s in MOVABLE]))))
            .scalars()
            .all()
        )
        moved = []
        for row in rows:
            if row.worker_id == worker_id or any(p.get("worker_id") == worker_id for p in row.subordinates):
                await instance_service.release_or_forget(session, row, reason)
                moved.append(row.name)
        return moved
