"""Run the Alembic migrations at start, on the server's own connection.

Several server replicas may start at once against PostgreSQL: an advisory
transaction lock makes them migrate one after another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from gpufleet.db.session import Database

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK_ID = 0x6770_7566  # "gpuf"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def upgrade(database: Database) -> None:
    config = alembic_config()

    def _run(connection: Any) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with database.write_engine.begin() as connection:
        if database.dialect == "postgresql":
            await connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        await connection.run_sync(_run)
