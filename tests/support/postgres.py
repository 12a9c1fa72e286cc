"""A fresh PostgreSQL database per test, on the server at ``GPUFLEET_TEST_POSTGRES_URL``.

Default: ``postgresql://postgres:postgres@127.0.0.1:5432/postgres`` (what
``scripts/ensure-postgres.sh`` provides). When no server answers, the tests
that need it are skipped with that reason.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ADMIN_URL = os.environ.get("GPUFLEET_TEST_POSTGRES_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres")


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _execute(sql: str) -> None:
    connection = await asyncpg.connect(ADMIN_URL, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def unavailable_reason() -> str | None:
    try:
        asyncio.run(_execute("SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"no PostgreSQL at {ADMIN_URL} ({type(exc).__name__}: {exc}); run scripts/ensure-postgres.sh"
    return None


def create_database() -> tuple[str, str]:
    name = f"gpufleet_test_{secrets.token_hex(4)}"
    asyncio.run(_execute(f'CREATE DATABASE "{name}"'))
    return name, _with_database(ADMIN_URL, name)


def drop_database(name: str) -> None:
    asyncio.run(_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
