"""Memoised entry point for the scheduler: one header read per file, one Estimator per (file, settings).

Reading a header costs milliseconds (a 150 000-token vocabulary) or a network round trip; the
scheduler asks about the same few models over and over. Local files are keyed by path, size and
modification time, so a replaced file is read again; remote ones by URL.
"""

from __future__ import annotations

import os
from functools import lru_cache

from gpufleet.estimate.config import RunConfig
from gpufleet.estimate.gguf import read_model
from gpufleet.estimate.memory import Estimator
from gpufleet.estimate.model_info import ModelInfo, model_info


def _file_key(location: str) -> tuple[str, int, int]:
    try:
        stat = os.stat(location)
    except OSError:
        return (location, -1, -1)  # remote (or missing: read_model will say so)
    return (location, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=256)
def _info(key: tuple[str, int, int]) -> ModelInfo:
    return model_info(read_model(key[0]))


@lru_cache(maxsize=1024)
def _estimator(key: tuple[str, int, int], config: RunConfig) -> Estimator:
    return Estimator(_info(key), config)


def load_info(location: str) -> ModelInfo:
    return _info(_file_key(location))


def load_estimator(location: str, config: RunConfig | None = None) -> Estimator:
    """The Estimator for a model file and run settings; built once, then reused."""
    return _estimator(_file_key(location), config or RunConfig())
