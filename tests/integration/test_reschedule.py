"""A lost worker's instances are sent back to be placed elsewhere after ``--reschedule-grace``, and a server
restart grants the whole grace again (finding 3). The real server and SQLite; the worker is only its API calls."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg

from gpufleet.common.clock import utcnow
from gpufleet.db.migrate import upgrade
from gpufleet.db.session import Database
from gpufleet.db.tables import Worker
from gpufleet.schemas.states import WorkerState
from gpufleet.server.services.reschedule import move_off
from tests.integration.test_workers import place
from tests.support.builders import local_model, register_worker
from tests.support.server import RunningServer, running_server
from tests.support.wait import eventually

INTERVAL = 0.2  # heartbeat interval: a silent worker is not_ready after 0.6 s
GRACE = 5.0


async def _instance(server: RunningServer, model_id: int) -> dict[str, Any] | None:
    async with await server.admin() as admin:
        rows = (await admin.get("/api/model-instances", params={"model_id": model_id})).json()
    return rows[0] if rows else None


async def test_a_lost_workers_instance_moves_after_the_grace_counted_anew_after_a_restart(tmp_path: Path) -> None:
    settings: dict[str, Any] = {"heartbeat_interval": INTERVAL, "reschedule_grace": GRACE}
    async with running_server(tmp_path, **settings) as server, await server.admin() as admin:
        worker = (await register_worker(admin, server.token, "lost", gpus=1))["worker"]
        model = (await admin.post("/api/models", json=local_model())).json()
        instance = await eventually(lambda: _instance(server, model["id"]), what="the pending instance")
        await place(server, instance["id"], worker, [f"{worker['name']}:cuda:0"])

        async def unreachable() -> dict[str, Any] | None:
            row = await _instance(server, model["id"])
            return row if row is not None and row["state"] == "unreachable" else None

        await eventually(unreachable, timeout=5, what="the instance of the silent worker unreachable")

    # The server restarts within the grace: the grace starts again from the restart, not from the
    # worker's last heartbeat (heartbeats sent while no server ran were never recorded).
    restarted = time.monotonic()
    async with running_server(tmp_path, **settings) as server:

        async def moved() -> dict[str, Any] | None:
            row = await _instance(server, model["id"])
            return row if row is not None and row["worker_id"] is None else None

        row = await eventually(moved, timeout=GRACE + 10, interval=0.05, what="the instance moved off the lost worker")
        assert time.monotonic() - restarted >= GRACE + 3 * INTERVAL  # never before start + window + grace
        assert row["state"] == "pending" and row["device_ids"] == [] and row["claim"] is None


async def test_moving_off_waits_for_a_heartbeat_reviving_the_worker(postgres_url: str) -> None:
    """PostgreSQL: a revival committing while move_off decides must be seen by it (the worker row is
    read locked), else a live worker's instances would be moved off it."""
    db = Database(postgres_url)
    await upgrade(db)
    try:
        async with db.transaction() as session:
            worker = Worker(
                name="lost",
                ip="127.0.0.1",
                port=1,
                state=WorkerState.NOT_READY.value,
                labels={},
                system_reserved={},
                status={},
                credential_hash="x" * 64,
                heartbeat_at=utcnow() - timedelta(hours=1),
            )
            session.add(worker)
            await session.flush()
            worker_id = worker.id
        reviving = await asyncpg.connect(postgres_url)
        try:
            transaction = reviving.transaction()
            await transaction.start()
            await reviving.execute("UPDATE workers SET state = 'ready', heartbeat_at = now() WHERE id = $1", worker_id)
            decision = asyncio.create_task(move_off(db, worker_id, lambda _seen: utcnow() - timedelta(minutes=1)))

            async def waiting() -> bool:
                return bool(await reviving.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"))

            await eventually(waiting, timeout=10, what="move_off to wait for the revival's row lock")
            await transaction.commit()
        finally:
            await reviving.close()
        assert await asyncio.wait_for(decision, 10) is None  # the worker is back: nothing moves
    finally:
        await db.dispose()
