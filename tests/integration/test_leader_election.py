"""Leader election and fencing on PostgreSQL (``server/leader.py``), and the single SQLite leader.

The old leader is "paused" by cancelling its election loop (it no longer checks its lock) and its
lock session is ended the way PostgreSQL ends it when the lease runs out (``pg_terminate_backend``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import select

from gpufleet.db.migrate import upgrade
from gpufleet.db.session import Database, FencedOut, run_fenced
from gpufleet.db.tables import User
from gpufleet.server import leader
from gpufleet.server.controllers.worker_health import StaleWorkerSweep
from gpufleet.server.heartbeats import HeartbeatLedger
from gpufleet.server.leader import APPLICATION_NAME, FENCE, NS, PostgresFence, PostgresLeadership
from tests.support.server import running_server
from tests.support.wait import eventually


class Recorder:
    """A leader-only task that notes when it runs."""

    def __init__(self) -> None:
        self.running = False

    def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False


@asynccontextmanager
async def candidate(url: str) -> AsyncIterator[tuple[Database, PostgresLeadership, Recorder]]:
    db = Database(url)
    leadership = PostgresLeadership(db)
    task = Recorder()
    leadership.register(task)
    await leadership.start()
    try:
        yield db, leadership, task
    finally:
        await leadership.stop()
        await db.dispose()


def pause(leadership: PostgresLeadership) -> None:
    """Stop the election loop without stepping down: the server no longer notices it lost the lock."""
    assert leadership._task is not None
    leadership._task.cancel()


async def end_lock_session(url: str, leadership: PostgresLeadership) -> None:
    """What PostgreSQL does to the lock session of a leader silent for longer than the lease."""
    assert leadership.fence is not None
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("SELECT pg_terminate_backend($1)", leadership.fence.pid)
    finally:
        await connection.close()


async def add_user(db: Database, name: str) -> None:
    async with db.transaction() as session:
        session.add(User(username=name, password_hash="x", role="user", must_change_password=False))


async def users(db: Database) -> set[str]:
    async with db.read() as session:
        return set((await session.execute(select(User.username))).scalars().all())


async def fenced(db: Database, leadership: PostgresLeadership, name: str) -> None:
    """``add_user`` run as leader-only work of ``leadership``'s term."""
    assert leadership.fence is not None
    done: list[asyncio.Task[None]] = []
    run_fenced(leadership.fence, lambda: done.append(asyncio.create_task(add_user(db, name))))
    await done[0]


async def test_one_leader_and_a_paused_one_cannot_commit_after_losing_the_lock(postgres_url: str) -> None:
    setup = Database(postgres_url)
    await upgrade(setup)
    async with candidate(postgres_url) as (db_a, a, task_a):
        await eventually(_async(lambda: a.leader), timeout=10, what="the first server to lead")
        assert task_a.running
        async with candidate(postgres_url) as (db_b, b, task_b):
            await fenced(db_a, a, "written-while-leading")
            await eventually(_async(lambda: b.tries >= 2), timeout=10, what="b to try for the lock twice")
            assert not b.leader and not task_b.running

            pause(a)
            await end_lock_session(postgres_url, a)
            await eventually(_async(lambda: b.leader), timeout=10, what="the takeover")
            assert task_b.running and a.leader  # a, paused, still believes it leads …
            with pytest.raises(FencedOut):
                await fenced(db_a, a, "written-by-the-old-leader")  # … but its writes are refused
            await fenced(db_b, b, "written-by-the-new-leader")
            assert await users(setup) >= {"written-while-leading", "written-by-the-new-leader"}
            assert "written-by-the-old-leader" not in await users(setup)
    await setup.dispose()


async def test_a_new_leader_waits_for_the_old_leaders_open_transaction(postgres_url: str) -> None:
    """The drain: a fenced transaction begun while the old leader held the lock commits before the new
    leader starts, so the new leader's first snapshot includes it."""
    setup = Database(postgres_url)
    await upgrade(setup)
    async with candidate(postgres_url) as (db_a, a, _):
        await eventually(_async(lambda: a.leader), timeout=10, what="the first server to lead")
        assert a.fence is not None
        release = asyncio.Event()
        checked = asyncio.Event()

        async def slow_placement() -> None:
            async with db_a.transaction() as session:  # the fence is checked here, at the start
                checked.set()
                await release.wait()  # paused mid-transaction, after its check passed
                session.add(User(username="decided-before", password_hash="x", role="user", must_change_password=False))

        tasks: list[asyncio.Task[None]] = []
        run_fenced(a.fence, lambda: tasks.append(asyncio.create_task(slow_placement())))
        await checked.wait()
        pause(a)
        await end_lock_session(postgres_url, a)
        async with candidate(postgres_url) as (_, b, task_b):
            await eventually(lambda: _draining(postgres_url), timeout=10, what="b to win the lock and wait")
            assert not b.leader and not task_b.running, "the new leader started before the old one's commit"
            release.set()
            await tasks[0]
            await eventually(_async(lambda: task_b.running), timeout=10, what="the new leader, once drained")
            assert "decided-before" in await users(setup)
    await setup.dispose()


async def test_sqlite_has_one_server_that_always_leads(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, server.client() as client:
        assert (await client.get("/healthz")).json()["leader"] is True
        assert "gpufleet_server_leader 1.0" in (await client.get("/metrics")).text


async def test_a_postgresql_server_alone_leads(tmp_path: Path, postgres_url: str) -> None:
    async with running_server(tmp_path, postgres_url) as server, server.client() as client:
        health = await eventually(lambda: _leading(client), timeout=10, what="the only server to become the leader")
        assert health["leader"] is True


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return check()

    return probe


async def _draining(url: str) -> bool:
    """Whether a session waits for the fence lock exclusively (a new leader draining the old one)."""
    connection = await asyncpg.connect(url)
    try:
        waiting = await connection.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND CAST(classid AS bigint) = $1 AND CAST(objid AS bigint) = $2 AND mode = 'ExclusiveLock'",
            NS,
            FENCE,
        )
    finally:
        await connection.close()
    return bool(waiting)


async def _leading(client: httpx.AsyncClient) -> dict[str, object] | None:
    body: dict[str, object] = (await client.get("/healthz")).json()
    return body if body["leader"] else None


async def test_a_fence_refuses_a_later_session_given_the_same_pid(postgres_url: str) -> None:
    """PostgreSQL may give the old lock session's pid to the next leader's: the fence names the session
    by pid and start time, so the old leader's check cannot pass on the new leader's lock."""
    setup = Database(postgres_url)
    await upgrade(setup)
    async with candidate(postgres_url) as (db_a, a, _):
        await eventually(_async(lambda: a.leader), timeout=10, what="the first server to lead")
        assert a.fence is not None
        await fenced(db_a, a, "by-the-real-session")
        # The same pid, holding the lock, but a session begun at another time: another session.
        a.fence = PostgresFence(a.fence.pid, a.fence.started - timedelta(seconds=1))
        with pytest.raises(FencedOut):
            await fenced(db_a, a, "by-an-impostor")
        assert "by-an-impostor" not in await users(setup)
    await setup.dispose()


async def _lock_sessions(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        count = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
            APPLICATION_NAME,
        )
    finally:
        await connection.close()
    return int(count)


async def test_a_lock_connection_that_fails_to_set_up_is_closed(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leader, "_lease_settings", lambda _major: ["SET no_such_setting = 1"])
    async with candidate(postgres_url) as (_, a, _task):
        await eventually(_async(lambda: a.failures >= 3), timeout=15, what="three failed election rounds")
        assert not a.leader

        async def none_left() -> bool:
            return await _lock_sessions(postgres_url) == 0

        await eventually(none_left, timeout=10, what="every half set-up lock connection to be closed")


def test_postgresql_before_14_gets_no_idle_session_timeout() -> None:
    assert not any("idle_session_timeout" in s for s in leader._lease_settings(13))
    assert any("idle_session_timeout" in s for s in leader._lease_settings(14))


async def test_a_fenced_out_sweep_logs_no_traceback(postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    setup = Database(postgres_url)
    await upgrade(setup)
    async with candidate(postgres_url) as (db_a, a, _):
        await eventually(_async(lambda: a.leader), timeout=10, what="the first server to lead")
        assert a.fence is not None
        pause(a)
        await end_lock_session(postgres_url, a)
        sweep = StaleWorkerSweep(db_a, 0.2, HeartbeatLedger(db_a, 0.05))
        run_fenced(a.fence, sweep.start)  # still believes it leads: its sweep's writes are refused
        try:

            async def refused() -> bool:
                return any("not committed" in r.getMessage() for r in caplog.records)

            await eventually(refused, timeout=10, what="the sweep to be fenced out")
        finally:
            await sweep.stop()
        assert not [r for r in caplog.records if r.name.endswith("worker_health") and r.exc_info]
    await setup.dispose()
