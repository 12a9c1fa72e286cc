"""The database handle: engines, transactions, and publishing events after commit.

Invariants:
- Writes go through ``Database.transaction()``: one transaction per operation,
  committed or rolled back as a whole; events recorded in it are published only
  after the commit succeeded (``record_event``), so a watcher never sees a change
  that was rolled back.
- On SQLite, write transactions start with ``BEGIN IMMEDIATE``: the write lock is
  taken up front, so two writers queue on ``busy_timeout`` instead of one failing
  when it upgrades a read lock. Reads use a separate engine with plain ``BEGIN``.
- No network I/O happens inside a transaction (it would hold the SQLite write lock).
- A writer waiting for the pool's one SQLite write connection (another task of this process holds it)
  waits at most ``LOCKED_DEADLINE`` too, then gets ``DatabaseBusy`` (503), never the pool's own
  ``TimeoutError`` (a 500).
- "database is locked" never reaches a caller while the lock is only busy: each ``BEGIN IMMEDIATE``
  waits ``busy_timeout`` and is tried again, the body not yet run, until ``LOCKED_DEADLINE``; only
  then ``DatabaseBusy`` (HTTP 503). SQLite's own busy handler is not enough on its own: it is not
  called for every kind of busy (a WAL being recovered, a connection opening while another changes
  the journal mode), and one long wait per attempt would hide a stuck writer.
- Leader-only work runs *fenced* (``run_fenced``): every transaction started in its tasks first calls
  the fence, which raises unless this process still leads, and holds what makes a new leader wait
  for it (``gpufleet.server.leader``); so a leader that lost its lease while paused cannot commit.
- Hooks run inside the transaction, just before the commit, with the events it recorded
  (``add_before_commit``): PostgreSQL ``NOTIFY`` is sent there, so other servers hear of a change
  exactly when it commits. ``deliver`` hands events that other servers committed to the same
  listeners as local ones.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from gpufleet.common.errors import InvalidInput, Unavailable
from gpufleet.schemas.events import Event

logger = logging.getLogger(__name__)

EventListener = Callable[[Event], None]
CredentialsListener = Callable[[], None]
# Called inside a write transaction just before it commits: (session, its events, credentials changed).
BeforeCommit = Callable[[AsyncSession, list[Event], bool], Awaitable[None]]

WRITER_BUSY_TIMEOUT_MS = 2_000  # one attempt at the SQLite write lock …
READER_BUSY_TIMEOUT_MS = 30_000
LOCKED_DEADLINE = 60.0  # … tried again until this many seconds have passed: then DatabaseBusy
POOL_TIMEOUT = LOCKED_DEADLINE  # seconds a SQLite session waits for a pooled connection: then DatabaseBusy


class Fence(Protocol):
    async def verify(self, session: AsyncSession) -> None:
        """Raise unless this process may still do leader-only writes; run first in each fenced transaction."""


_fence: contextvars.ContextVar[Fence | None] = contextvars.ContextVar("gpufleet_fence", default=None)


def run_fenced(fence: Fence, start: Callable[[], None]) -> None:
    """Call ``start`` (which creates the tasks of leader-only work) so that every transaction those
    tasks open, and the tasks and threads they create in turn, is checked by ``fence`` first."""
    context = contextvars.copy_context()
    context.run(_fence.set, fence)
    context.run(start)


def _locked(exc: OperationalError) -> bool:
    return "database is locked" in str(exc.orig) or "database is busy" in str(exc.orig)


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached, opened or migrated; the message has the driver's first line."""

    code = "database_unavailable"


class FencedOut(Exception):
    """A fence refused a transaction: this process no longer leads (the transaction rolls back)."""


class DatabaseBusy(Unavailable):
    """SQLite's write lock stayed taken by another process for ``LOCKED_DEADLINE`` seconds."""

    code = "database_busy"


def async_url(url: str) -> str:
    """``sqlite:///x.db`` / ``postgresql://…`` → the async driver URL SQLAlchemy needs."""
    if url.startswith("sqlite:///") or url.startswith("sqlite+aiosqlite:///"):
        return "sqlite+aiosqlite:///" + url.split(":///", 1)[1]
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise InvalidInput(
        f"unsupported --database-url {url!r}: use sqlite:///PATH or postgresql://USER@HOST:PORT/DB",
        field="database_url",
    )


def _sqlite_engine(url: str, *, immediate: bool, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=POOL_TIMEOUT)
    busy_timeout = WRITER_BUSY_TIMEOUT_MS if immediate else READER_BUSY_TIMEOUT_MS

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout}")  # first: switching to WAL may wait for a lock
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    def __init__(self, url: str) -> None:
        self.url = async_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        if self.dialect == "sqlite":
            path = make_url(self.url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.write_engine = _sqlite_engine(self.url, immediate=True, pool_size=1)
            self.read_engine = _sqlite_engine(self.url, immediate=False, pool_size=5)
        else:
            self.write_engine = create_async_engine(self.url, pool_size=10, max_overflow=10, pool_pre_ping=True)
            self.read_engine = self.write_engine
        self._writer = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._reader = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._listeners: list[EventListener] = []
        self._credentials_listeners: list[CredentialsListener] = []
        self._before_commit: list[BeforeCommit] = []

    def add_listener(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def add_credentials_listener(self, listener: CredentialsListener) -> None:
        """Called after a commit that revoked or changed a credential (``record_credentials_change``)."""
        self._credentials_listeners.append(listener)

    def add_before_commit(self, hook: BeforeCommit) -> None:
        """``hook`` runs in every write transaction that recorded events or a credentials change,
        just before it commits (an exception there rolls the transaction back)."""
        self._before_commit.append(hook)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        session = await self._begin_write()
        async with session:
            try:
                fence = _fence.get()
                if fence is not None:
                    await fence.verify(session)
                yield session
                events: list[Event] = session.info.pop("events", [])
                credentials_changed = bool(session.info.pop("credentials_changed", False))
                if events or credentials_changed:
                    for hook in self._before_commit:
                        await hook(session, events, credentials_changed)
                await session.commit()
            except PoolTimeout as exc:  # PostgreSQL takes its connection in the body: every one in use
                await session.rollback()
                raise DatabaseBusy(f"no database connection came free within {POOL_TIMEOUT:.0f}s; try again") from exc
            except BaseException:
                await session.rollback()
                raise
        self.deliver(events, credentials_changed)

    def deliver(self, events: list[Event], credentials_changed: bool) -> None:
        """Hand committed changes to the listeners: this process's own, or another server's (relayed)."""
        if credentials_changed:
            for changed in self._credentials_listeners:
                changed()
        for item in events:
            for listener in self._listeners:
                listener(item)

    async def _begin_write(self) -> AsyncSession:
        """A session in a begun write transaction; on SQLite holding the write lock, taken before the
        body runs, so that a lock still busy after ``busy_timeout`` can be tried again."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCKED_DEADLINE
        attempt = 0
        while True:
            session = self._writer()
            try:
                await session.begin()
                if self.dialect == "sqlite":
                    await session.connection()  # emits BEGIN IMMEDIATE: the write lock, now
                return session
            except PoolTimeout as exc:
                await session.close()
                raise DatabaseBusy(
                    f"the database's write connection stayed in use for {POOL_TIMEOUT:.0f}s; try again"
                ) from exc
            except OperationalError as exc:
                await session.close()
                if not _locked(exc):
                    raise
                attempt += 1
                if loop.time() >= deadline:
                    raise DatabaseBusy(
                        f"the database stayed locked by another writer for {LOCKED_DEADLINE:.0f}s; try again"
                    ) from exc
                logger.info("SQLite write lock busy (attempt %d); trying again", attempt)
                await asyncio.sleep(min(0.05 * attempt, 0.5))
            except BaseException:
                await session.close()
                raise

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        try:
            async with self._reader() as session, session.begin():
                yield session
        except PoolTimeout as exc:
            raise DatabaseBusy(f"no database connection came free within {POOL_TIMEOUT:.0f}s; try again") from exc

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()


def record_event(session: AsyncSession, item: Event) -> None:
    """Queue an event to publish once this session's transaction commits."""
    session.info.setdefault("events", []).append(item)


def record_credentials_change(session: AsyncSession) -> None:
    """Mark this transaction as revoking or changing credentials (a key deleted, a logout, a role or
    password changed): once it commits, caches of verified credentials are dropped."""
    session.info["credentials_changed"] = True
