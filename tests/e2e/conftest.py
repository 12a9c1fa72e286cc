"""Fixtures shared by end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.engine_cluster import Engines, start_engines


@pytest.fixture(scope="session")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    """A running gpufleet with a real llama-server; skipped where none can be found."""
    yield from start_engines(tmp_path_factory)
