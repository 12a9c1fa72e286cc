"""The migrations build exactly the schema the ORM tables describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gpufleet.db.migrate import upgrade
from gpufleet.db.session import Database
from gpufleet.db.tables import Base


async def test_migrations_match_the_tables(database_url: str) -> None:
    db = Database(database_url)
    try:
        await upgrade(db)
        await upgrade(db)  # idempotent: a restart migrates nothing

        def differences(connection: Any) -> list[Any]:
            return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))

        async with db.write_engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await db.dispose()
