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
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from gpufleet.common.errors import InvalidInput, Unavailable
from gpufleet.schemas.events import Event

logger = logging.getLogger(__name__)

EventListener = Callable[[Event], None]
CredentialsListener = Callable[[], None]


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached, opened or migrated; the message has the driver's first line."""

    code = "database_unavailable"


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
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=60)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
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
                from pathlib import Path

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

    def add_listener(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def add_credentials_listener(self, listener: CredentialsListener) -> None:
        """Called after a commit that revoked or changed a credential (``record_credentials_change``)."""
        self._credentials_listeners.append(listener)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self._writer() as session:
            async with session.begin():
                yield session
            events: list[Event] = session.info.pop("events", [])
            credentials_changed = session.info.pop("credentials_changed", False)
        if credentials_changed:
            for changed in self._credentials_listeners:
                changed()
        for item in events:
            for listener in self._listeners:
                listener(item)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._reader() as session, session.begin():
            yield session

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
