"""Per-machine locations: the cache of slow builds and downloads."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$GPUFLEET_CACHE_DIR``, else ``~/.cache/gpufleet``: engine builds and downloads, kept across runs."""
    configured = os.environ.get("GPUFLEET_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "gpufleet"
