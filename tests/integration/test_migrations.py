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
                    'INSERT INTO devices (id, worker_id, "index", type, vendor, name, memory_total, memory_used, '
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


async def test_upgrading_and_downgrading_keep_the_rows_that_hang_off_workers_and_models(database_url: str) -> None:
    """Every migration changes parent tables (workers, models, api keys) in place: rebuilding one on
    SQLite (Alembic's batch mode) drops it, and with foreign keys on the drop cascades to devices
    and detaches instances. A worker with a device and a model with an instance on that worker,
    written at 0001, survive the way up to the head and back down to 0001."""
    db = Database(database_url)
    config = alembic_config()

    def migrate(connection: Any, target: str, down: bool = False) -> None:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, target)

    now = {"now": datetime.now(UTC)}
    try:
        async with db.write_engine.begin() as connection:
            await connection.run_sync(migrate, "0001")
            await connection.execute(
                text(
                    "INSERT INTO workers (id, name, ip, port, state, maintenance, labels, system_reserved, status, "
                    "credential_hash, created_at, updated_at) VALUES (1, 'w', '127.0.0.1', 1, 'ready', false, "
                    "'{}', '{}', '{}', 'c', :now, :now)"
                ),
                now,
            )
            await connection.execute(
                text(
                    'INSERT INTO devices (id, worker_id, "index", type, vendor, name, memory_total, memory_used, '
                    "unified_memory, simulated, sort_key, updated_at) VALUES ('w:cpu:0', 1, 0, 'cpu', 'amd', "
                    "'EPYC', 1, 0, false, true, 0, :now)"
                ),
                now,
            )
            await connection.execute(
                text(
                    "INSERT INTO models (id, name, source, local_path, backend_parameters, replicas, "
                    "placement_strategy, cpu_offloading, distributed_inference_across_workers, worker_selector, "
                    "created_at, updated_at) VALUES (1, 'm', 'local_path', '/m.gguf', '[]', 1, 'spread', false, "
                    "true, '{}', :now, :now)"
                ),
                now,
            )
            await connection.execute(
                text(
                    "INSERT INTO model_instances (id, name, model_id, model_name, state, worker_id, worker_name, "
                    "device_ids, subordinates, restart_count, version, created_at, updated_at) VALUES (1, 'm-1', 1, "
                    "'m', 'running', 1, 'w', '[\"w:cpu:0\"]', '[]', 0, 1, :now, :now)"
                ),
                now,
            )
        for target, down in (("head", False), ("0001", True)):
            async with db.write_engine.begin() as connection:
                await connection.run_sync(migrate, target, down)
            async with db.write_engine.connect() as connection:
                devices = (await connection.execute(text("SELECT id FROM devices"))).scalars().all()
                instance = (await connection.execute(text("SELECT model_id, worker_id FROM model_instances"))).one()
            assert devices == ["w:cpu:0"], target
            assert tuple(instance) == (1, 1), target
    finally:
        await db.dispose()
