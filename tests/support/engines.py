"""Inference engine binaries for tests that need a real one (llama.cpp's ``llama-server``).

CI machines have no llama.cpp build, so these tests look in a few known places and skip,
naming them, when nothing is there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from gpufleet.common.paths import cache_dir

SERVER_ENV = "GPUFLEET_LLAMA_SERVER"
CACHE_ENV = "GPUFLEET_CACHE_DIR"
CACHE_GLOB = "engines/llama.cpp/*/*/bin/llama-server"


def find_llama_server() -> Path | None:
    """The first executable ``llama-server`` among: ``$GPUFLEET_LLAMA_SERVER``, ``PATH``, and the
    builds gpufleet caches under ``$GPUFLEET_CACHE_DIR`` (default ``~/.cache/gpufleet``), newest first."""
    candidates: list[Path] = []
    configured = os.environ.get(SERVER_ENV)
    if configured:
        candidates.append(Path(configured).expanduser())
    on_path = shutil.which("llama-server")
    if on_path:
        candidates.append(Path(on_path))
    cached = sorted(cache_dir().glob(CACHE_GLOB), key=lambda p: p.stat().st_mtime, reverse=True)
    candidates += cached
    return next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)


def llama_server_missing_reason() -> str:
    """Why a llama-server test is skipped: the places searched."""
    return (
        f"no llama-server binary: set ${SERVER_ENV}, put llama-server on PATH, or build one into "
        f"${CACHE_ENV}/{CACHE_GLOB} (default {Path.home() / '.cache' / 'gpufleet' / CACHE_GLOB})"
    )
