"""SQLite "database is locked" never reaches a user (GPUStack #1140): many API writes at once while
another process holds the write lock, once for longer than one ``busy_timeout`` (``db/session.py``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gpufleet.db import session as session_module
from gpufleet.db.session import WRITER_BUSY_TIMEOUT_MS, Database, DatabaseBusy
from tests.support.server import running_server

WRITES = 60
# The other process's write transactions: the first outlasts a busy_timeout, then a stream of short ones.
HOLDS = [WRITER_BUSY_TIMEOUT_MS / 1000 + 1.5] + [0.2] * 10

OTHER_WRITER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
connection.execute("CREATE TABLE IF NOT EXISTS other_process_writes (n INTEGER)")
for hold in map(float, sys.argv[2:]):
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("INSERT INTO other_process_writes VALUES (1)")
    print("locked", flush=True)
    time.sleep(hold)  # holds the write lock, as a long write transaction would
    connection.execute("COMMIT")
print("done", flush=True)
"""


async def test_concurrent_writers_never_see_database_is_locked(tmp_path: Path) -> None:
    database = tmp_path / "db" / "gpufleet.db"
    async with running_server(tmp_path, f"sqlite:///{database}") as server, await server.admin() as admin:
        other = await asyncio.create_subprocess_exec(
            sys.executable, "-c", OTHER_WRITER, str(database), *map(str, HOLDS), stdout=subprocess.PIPE
        )
        try:
            assert other.stdout is not None
            assert await other.stdout.readline() == b"locked\n"  # it holds the lock now

            async def write(i: int) -> httpx.Response:
                return await admin.post("/api/api-keys", json={"name": f"key-{i}"}, timeout=60)

            answers = await asyncio.gather(*(write(i) for i in range(WRITES)))
            assert await asyncio.wait_for(other.wait(), 60) == 0
        finally:
            if other.returncode is None:
                other.kill()
                await other.wait()
        failed = [(r.status_code, r.text) for r in answers if r.status_code != 201]
        assert failed == [], failed
        names = {key["name"] for key in (await admin.get("/api/api-keys")).json()}
        assert names >= {f"key-{i}" for i in range(WRITES)}


async def test_a_writer_waiting_for_the_write_connection_too_long_is_told_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SQLite write pool has one connection: a writer waiting behind a long holder gets
    ``DatabaseBusy`` (503, try again), never the pool's TimeoutError (a 500)."""
    monkeypatch.setattr(session_module, "POOL_TIMEOUT", 0.3)
    db = Database(f"sqlite:///{tmp_path / 'gpufleet.db'}")
    try:
        holding = asyncio.Event()
        release = asyncio.Event()

        async def holder() -> None:
            async with db.transaction():
                holding.set()
                await release.wait()

        task = asyncio.create_task(holder())
        await holding.wait()
        with pytest.raises(DatabaseBusy):
            async with db.transaction():
                pass
        release.set()
        await task
        async with db.transaction():  # free again
            pass
    finally:
        await db.dispose()
