"""The heartbeat ledger's faults (``server/heartbeats.py``): a server that cannot write heartbeats
stops answering them from memory, a flush never moves ``heartbeat_at`` backwards, and what was
cached from missed changes is forgotten."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import asyncpg
from sqlalchemy import select

from gpufleet.common.clock import as_utc, utcnow
from gpufleet.db.migrate import upgrade
from gpufleet.db.session import Database
from gpufleet.db.tables import Worker
from gpufleet.schemas.states import WorkerState
from gpufleet.schemas.workers import HeartbeatAck
from gpufleet.server.heartbeats import HeartbeatLedger
from tests.support import postgres
from tests.support.wait import eventually


async def add_worker(db: Database, name: str, state: WorkerState = WorkerState.READY) -> int:
    async with db.transaction() as session:
        worker = Worker(
            name=name,
            ip="127.0.0.1",
            port=1,
            state=state.value,
            labels={},
            system_reserved={},
            status={},
            credential_hash=secrets.token_hex(32),
            heartbeat_at=utcnow(),
        )
        session.add(worker)
        await session.flush()
        return worker.id


async def heartbeat_at(db: Database, worker_id: int) -> object:
    async with db.read() as session:
        return (await session.execute(select(Worker.heartbeat_at).where(Worker.id == worker_id))).scalar_one()


def live(ledger: HeartbeatLedger, worker_id: int) -> None:
    ledger.known(HeartbeatAck(id=worker_id, state=WorkerState.READY, state_message=None))


async def test_a_flush_never_moves_heartbeat_at_backwards(tmp_path: Path) -> None:
    """Another server wrote a later heartbeat: this server's older arrival must not overwrite it."""
    db = Database(f"sqlite:///{tmp_path / 'gpufleet.db'}")
    await upgrade(db)
    try:
        ledger = HeartbeatLedger(db, flush_interval=0.1)
        worker_id = await add_worker(db, "w")
        live(ledger, worker_id)
        assert ledger.beat(worker_id) is not None  # noted now …
        later = utcnow() + timedelta(seconds=30)
        async with db.transaction() as session:  # … and another server wrote a later one meanwhile
            (await session.get(Worker, worker_id)).heartbeat_at = later  # type: ignore[union-attr]
        assert await ledger.flush() == 1
        stored = await heartbeat_at(db, worker_id)
        assert abs((as_utc(stored) - later).total_seconds()) < 0.01, stored  # type: ignore[arg-type]
    finally:
        await db.dispose()


async def test_forget_sends_every_worker_through_the_transaction_again(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'gpufleet.db'}")
    await upgrade(db)
    try:
        ledger = HeartbeatLedger(db, flush_interval=0.1)
        live(ledger, 7)
        assert ledger.beat(7) is not None
        ledger.forget()  # the relay reconnected: a not_ready marked meanwhile may have been missed
        assert ledger.beat(7) is None
    finally:
        await db.dispose()


async def _connections(name: str, allowed: bool) -> None:
    connection = await asyncpg.connect(postgres.ADMIN_URL)
    try:
        await connection.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            await connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
    finally:
        await connection.close()


async def test_a_server_cut_off_from_the_database_stops_answering_heartbeats_from_memory(postgres_url: str) -> None:
    """Answered from memory while its flushes fail, a worker would never fail over to a server that
    can write its heartbeats, and the leader would judge it lost while it still serves."""
    name = postgres_url.rsplit("/", 1)[1]
    db = Database(postgres_url)
    await upgrade(db)
    ledger = HeartbeatLedger(db, flush_interval=0.1, fast_window=0.5)
    try:
        worker_id = await add_worker(db, "w")
        live(ledger, worker_id)
        assert ledger.beat(worker_id) is not None
        assert await ledger.flush() == 1

        await _connections(name, allowed=False)
        ledger.start()

        async def refused() -> bool:
            return ledger.beat(worker_id) is None  # the transaction: it fails, the worker fails over

        await eventually(refused, timeout=10, what="the ledger to stop answering from memory")

        await _connections(name, allowed=True)

        async def answered() -> bool:
            return ledger.beat(worker_id) is not None

        await eventually(answered, timeout=10, what="the ledger to answer again once it writes")
    finally:
        await _connections(name, allowed=True)
        await ledger.stop()
        await db.dispose()
