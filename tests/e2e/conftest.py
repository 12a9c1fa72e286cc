"""Fixtures shared by end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.engine_cluster import Engines, start_engines
from tests.support.gpufleet_cluster import Cluster


@pytest.fixture(scope="session")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    """A running gpufleet with a real llama-server; skipped where none can be found."""
    yield from start_engines(tmp_path_factory)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Real ``gpufleet`` processes started by the test, killed at its end (last started first)."""
    running = Cluster(tmp_path)
    yield running
    for process in reversed(running.processes):
        process.kill()
