"""The migrations build exactly the schema the ORM tables describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from gpufleet.db.migrate import alembic_config, upgrade
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


async def test_0008_keeps_only_hashes_of_workers_api_tokens(database_url: str) -> None:
    """Clear worker API tokens written by 0007 become their SHA-256; none survives in clear, and the
    workers' devices survive the column change (rebuilding ``workers`` on SQLite cascaded to them)."""
    db = Database(database_url)
    config = alembic_config()

    def migrate(connection: Any, target: str) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, target)

    token = "t" * 43
    try:
        async with db.write_engine.begin() as connection:
            await connection.run_sync(migrate, "0007")
            for name, api_token in (("with-token", token), ("older", None)):
                await connection.execute(
                    text(
                        "INSERT INTO workers (name, ip, port, state, maintenance, labels, system_reserved, status, "
                        "credential_hash, api_token, created_at, updated_at) VALUES (:name, '127.0.0.1', 1, "
                        "'not_ready', false, '{}', '{}', '{}', :credential, :api_token, :now, :now)"
                    ),
                    {"name": name, "credential": name, "api_token": api_token, "now": datetime.now(UTC)},
                )
            await connection.execute(
                text(
                    "INSERT INTO devices (id, worker_id, \"index\", type, vendor, name, memory_total, memory_used, "
                    "unified_memory, simulated, sort_key, updated_at) SELECT 'with-token:cpu:0', id, 0, 'cpu', "
                    "'amd', 'EPYC', 1, 0, false, true, 0, :now FROM workers WHERE name = 'with-token'"
                ),
                {"now": datetime.now(UTC)},
            )
        await upgrade(db)
        async with db.write_engine.connect() as connection:
            rows = dict((await connection.execute(text("SELECT name, api_token_hash FROM workers"))).all())
            columns = await connection.run_sync(lambda c: [col["name"] for col in inspect(c).get_columns("workers")])
            devices = (await connection.execute(text("SELECT id FROM devices"))).scalars().all()
        assert rows == {"with-token": hashlib.sha256(token.encode()).hexdigest(), "older": None}
        assert "api_token" not in columns
        assert devices == ["with-token:cpu:0"]
    finally:
        await db.dispose()
