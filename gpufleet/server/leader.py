"""Leadership: of the servers sharing one database, exactly one runs the leader-only work.

Leader-only work is what must not run twice at once: the scheduler (two schedulers on one snapshot
would promise one GPU twice), the deployments controller (two would both add the missing replica),
the liveness sweep and probes, rescheduling. It is registered here (``Leadership.register``: one
line per task); the API, the gateway, the watch streams and the heartbeat ledger run on every server.

::

    FOLLOWER ──lock won, old leader drained──▶ LEADER
        ▲                                        │
        └──── lock connection lost or stopped ◀──┘  (leader-only tasks stopped first)

SQLite (``SingleServer``): one server per database file; it always leads and needs no fence.

PostgreSQL (``PostgresLeadership``), election by a session advisory lock:

- Each server keeps one dedicated connection and tries ``pg_try_advisory_lock(NS, LEADER)`` on it
  every ``TRY_INTERVAL`` seconds. The lock lives exactly as long as that session: a leader killed
  with SIGKILL closes its socket, PostgreSQL releases the lock at once, and a follower wins it at its
  next try. The leader checks every ``CHECK_INTERVAL`` that its session still holds the lock
  (``pg_locks``); if the query fails or says no, it stops its leader-only tasks at once.
- The lease: the lock connection has ``idle_session_timeout = LEASE`` and short TCP keepalives, so a
  leader that is paused (stopped process, stalled event loop) or cut off for longer than ``LEASE``
  loses its session, hence the lock, and another server takes over.

Fencing, so that a leader that lost the lock while paused cannot commit what it decided before:
every transaction of leader-only work (the tasks are started under ``run_fenced``) first takes
``pg_advisory_xact_lock_shared(NS, FENCE)`` and then checks in ``pg_locks`` that the lock session
it won with (its backend pid and start time: PostgreSQL reuses pids) still holds ``LEADER``;
otherwise it raises ``FencedOut`` and rolls back. A new leader, before it starts any work, takes
``pg_advisory_lock(NS, FENCE)`` exclusively and releases it: it waits for every fenced transaction
that is still open. Together:

- a fenced transaction whose check passed holds the shared lock while the old leader still held
  ``LEADER``, i.e. before the new leader won it, so the new leader's drain waits for that
  transaction to end: the new leader's first snapshot sees its commit;
- a fenced transaction that starts after the old session ended fails the check.

So no placement decided from a stale snapshot can commit beside the new leader's. Fenced
transactions set ``idle_in_transaction_session_timeout`` so a leader paused inside one cannot make
the drain wait longer than that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Protocol

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from gpufleet.db.session import Database, FencedOut, run_fenced

logger = logging.getLogger(__name__)

NS = 0x6770_7566  # "gpuf": the first key of gpufleet's two-key advisory locks
LEADER = 1  # held by the leader's lock session
FENCE = 2  # shared by fenced transactions; taken exclusively by a new leader to drain the old one
TRY_INTERVAL = 1.0  # seconds between a follower's tries
CHECK_INTERVAL = 2.0  # seconds between the leader's checks of its lock
LEASE = 15.0  # seconds a silent lock session is kept: the longest a paused leader blocks a takeover
QUERY_TIMEOUT = 5.0
APPLICATION_NAME = "gpufleet-leader-lock"  # names the lock sessions in pg_stat_activity
MIN_POSTGRES = 14  # idle_session_timeout, the lease of a paused leader, came in PostgreSQL 14


class Role(StrEnum):
    FOLLOWER = "follower"
    LEADER = "leader"


# The only moves (``Leadership._move`` checks them): lead once the lock is won and the old leader
# drained; follow again when the lock is lost or the server stops.
ALLOWED: dict[Role, frozenset[Role]] = {
    Role.FOLLOWER: frozenset({Role.LEADER}),
    Role.LEADER: frozenset({Role.FOLLOWER}),
}


class LeaderTask(Protocol):
    """What leader-only work looks like: a controller, a sweep."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class Leadership:
    """The registry of leader-only tasks, started when this server leads and stopped when it stops."""

    def __init__(self) -> None:
        self.tasks: list[LeaderTask] = []
        self.role = Role.FOLLOWER
        self.fence: PostgresFence | None = None  # what this term's transactions are checked by
        self.takeovers = 0  # times this server became the leader

    @property
    def leader(self) -> bool:
        return self.role == Role.LEADER

    def register(self, task: LeaderTask) -> None:
        self.tasks.append(task)

    def _move(self, to: Role) -> None:
        if to not in ALLOWED[self.role]:
            raise RuntimeError(f"leadership cannot move from {self.role} to {to}")
        self.role = to

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        await self._step_down("the server stops")

    def _lead(self, fence: PostgresFence | None) -> None:
        self._move(Role.LEADER)
        self.fence = fence
        self.takeovers += 1
        for task in self.tasks:
            if fence is None:
                task.start()
            else:
                run_fenced(fence, task.start)

    async def _step_down(self, reason: str) -> None:
        if not self.leader:
            return
        self._move(Role.FOLLOWER)
        logger.warning("no longer the leader (%s): stopping the scheduler and controllers", reason)
        for task in reversed(self.tasks):
            await task.stop()


class SingleServer(Leadership):
    """SQLite: the only server; it leads from the start."""

    async def start(self) -> None:
        self._lead(None)


class PostgresFence:
    """Checks, inside a transaction, that the lock session — backend pid ``pid``, begun at ``started``
    (a pid alone could be reused by the next leader's lock session) — still leads."""

    def __init__(self, pid: int, started: datetime) -> None:
        self.pid = pid
        self.started = started

    async def verify(self, session: AsyncSession) -> None:
        await session.execute(
            text(
                "SELECT pg_advisory_xact_lock_shared(:ns, :fence),"
                " set_config('idle_in_transaction_session_timeout', :timeout, true)"
            ),
            {"ns": NS, "fence": FENCE, "timeout": f"{int(LEASE * 1000)}"},
        )
        held = (
            await session.execute(text(held_by(":pid", ":started")), {"pid": self.pid, "started": self.started})
        ).scalar()
        if not held:
            raise FencedOut(f"this server no longer leads (its lock session {self.pid} lost the lock)")


def held_by(pid: str, started: str | None = None) -> str:
    """SQL: whether the backend ``pid`` (an expression) holds the leader lock in this database; with
    ``started``, only if that backend is the session begun then (not a later one given the same pid)."""
    same_session = (
        ""
        if started is None
        else f"""
      AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.pid AND a.backend_start = {started})"""
    )
    return f"""
SELECT EXISTS (
    SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.pid = {pid}
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND CAST(l.classid AS bigint) = {NS} AND CAST(l.objid AS bigint) = {LEADER} AND l.objsubid = 2{same_session}
)
"""


def _plain_url(db: Database) -> str:
    return make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresLeadership(Leadership):
    """Several servers on one PostgreSQL database: the one holding the advisory lock leads."""

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.url = _plain_url(db)
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._warned_old = False
        self.tries = 0  # times this server tried to win the lock
        self.failures = 0  # election rounds that failed (connection refused, a query failed …)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._campaign(), name="leader-election")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await super().stop()  # leader-only work ends before the lock is let go
        await self._disconnect()

    async def _campaign(self) -> None:
        while True:
            try:
                if self.leader:
                    if not await self._still_held():
                        await self._lose("the lock session no longer holds the lock")
                elif await self._try():
                    logger.info("this server is now the leader: it runs the scheduler and controllers")
                    assert self._connection is not None
                    started = await self._session_started(self._connection)
                    self._lead(PostgresFence(self._connection.get_server_pid(), started))
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self.failures += 1
                logger.info("leader election: %s: %s", type(exc).__name__, exc)
                await self._lose(f"{type(exc).__name__}: {exc}")
            except Exception:
                self.failures += 1
                logger.exception("leader election failed; trying again")
                await self._lose("an unexpected error")
            await asyncio.sleep(CHECK_INTERVAL if self.leader else TRY_INTERVAL)

    async def _try(self) -> bool:
        """Try the lock; on winning it, wait for the old leader's open fenced transactions."""
        connection = await self._connect()
        self.tries += 1
        won = await connection.fetchval("SELECT pg_try_advisory_lock($1, $2)", NS, LEADER, timeout=QUERY_TIMEOUT)
        if won:
            await connection.execute("SELECT pg_advisory_lock($1, $2)", NS, FENCE)  # the drain: no timeout
            await connection.execute("SELECT pg_advisory_unlock($1, $2)", NS, FENCE, timeout=QUERY_TIMEOUT)
        return bool(won)

    async def _still_held(self) -> bool:
        connection = await self._connect()
        return bool(await connection.fetchval(held_by("pg_backend_pid()"), timeout=QUERY_TIMEOUT))

    async def _connect(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            connection = await asyncpg.connect(
                self.url, timeout=QUERY_TIMEOUT, server_settings={"application_name": APPLICATION_NAME}
            )
            try:
                await self._configure(connection)
            except BaseException:
                connection.terminate()  # never leaked: the next try opens a fresh one
                raise
            self._connection = connection
        return self._connection

    async def _configure(self, connection: asyncpg.Connection) -> None:
        major = connection.get_server_version().major
        if major < MIN_POSTGRES and not self._warned_old:
            self._warned_old = True
            logger.error(
                "PostgreSQL %d is older than %d: a paused or cut-off leader keeps the lock until its TCP "
                "keepalives fail (no idle_session_timeout), so a takeover can take minutes; upgrade PostgreSQL",
                major,
                MIN_POSTGRES,
            )
        for statement in _lease_settings(major):
            await connection.execute(statement, timeout=QUERY_TIMEOUT)

    async def _session_started(self, connection: asyncpg.Connection) -> datetime:
        """When the lock session began: with its pid, it names the session (PostgreSQL reuses pids)."""
        started = await connection.fetchval(
            "SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()", timeout=QUERY_TIMEOUT
        )
        assert isinstance(started, datetime)
        return started

    async def _lose(self, reason: str) -> None:
        await self._step_down(reason)
        await self._disconnect()

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await asyncio.wait_for(connection.close(), QUERY_TIMEOUT)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                connection.terminate()


def _lease_settings(major: int) -> Iterable[str]:
    """Make the lock session end when its server goes silent for ``LEASE`` seconds."""
    lease_ms = int(LEASE * 1000)
    if major >= MIN_POSTGRES:
        yield f"SET idle_session_timeout = {lease_ms}"
    yield "SET tcp_keepalives_idle = 5"
    yield "SET tcp_keepalives_interval = 2"
    yield "SET tcp_keepalives_count = 3"


def leadership_for(db: Database) -> Leadership:
    return PostgresLeadership(db) if db.dialect == "postgresql" else SingleServer()
