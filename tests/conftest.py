"""Shared fixtures: database URLs (SQLite and PostgreSQL), in-process servers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support import postgres
from tests.support.server import RunningServer, running_server

# Tests must not pick up a developer's gpufleet environment.
KEPT = {"GPUFLEET_TEST_POSTGRES_URL", "GPUFLEET_LLAMA_SERVER", "GPUFLEET_RPC_SERVER", "GPUFLEET_CACHE_DIR"}
for _name in [n for n in os.environ if n.startswith("GPUFLEET_") and n not in KEPT]:
    del os.environ[_name]
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

_postgres_reason: list[str | None] = []


def postgres_skip_reason() -> str | None:
    if not _postgres_reason:
        _postgres_reason.append(postgres.unavailable_reason())
    return _postgres_reason[0]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    reason = postgres_skip_reason()
    if reason:
        pytest.skip(reason)
    name, url = postgres.create_database()
    try:
        yield url
    finally:
        postgres.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Runs the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'gpufleet.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A server on SQLite (use ``database_url`` + ``running_server`` for both databases)."""
    async with running_server(tmp_path) as running:
        yield running
