"""Per-machine locations: the cache of slow builds and downloads, and the private data directory."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

PRIVATE_DIR = 0o700  # the data dir: database, secrets, engine records and logs; its owner only
PRIVATE_FILE = 0o600
# SQLite's files beside a database: created with the database file's own mode (unix VFS)
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
# gpufleet's own secret files in the data dir; nothing else there is touched (it may be a project dir)
SECRET_FILES = ("token", "initial_admin_password", "worker.json", "demo_api_key")


def inside(path: Path, roots: Sequence[Path]) -> bool:
    """Whether the resolved ``path`` is one of ``roots`` or below one (by path components, not by
    string prefix: ``/data/models-evil`` is not inside ``/data/models``). The server and the worker
    both confine ``local_path`` models with it."""
    return any(path == root or root in path.parents for root in roots)


def cache_dir() -> Path:
    """``$GPUFLEET_CACHE_DIR``, else ``~/.cache/gpufleet``: engine builds and downloads, kept across runs."""
    configured = os.environ.get("GPUFLEET_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "gpufleet"


def make_private_dir(path: Path) -> None:
    """Create ``path`` (mode 0700), or take an existing one's group and other permissions away."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != PRIVATE_DIR:
        logger.info("%s was readable by others: made it private (0700)", path)
        path.chmod(PRIVATE_DIR)


def make_private_file(path: Path) -> None:
    """Mode 0600 for an existing file (one written by an older gpufleet with the default 0644)."""
    try:
        if stat.S_IMODE(path.stat().st_mode) != PRIVATE_FILE:
            path.chmod(PRIVATE_FILE)
    except FileNotFoundError:
        return


def secure_data_dir(data_dir: Path, sqlite_path: Path | None) -> None:
    """The data dir 0700 and gpufleet's own files in it 0600 (cluster token, initial password,
    worker credential, demo key; other files are left as they are); the SQLite database, wherever it is, 0600 with its
    WAL and shared-memory files, created empty with that mode when missing, so SQLite never
    creates it world-readable (it gives its WAL and -shm files the database file's mode)."""
    make_private_dir(data_dir)
    for name in SECRET_FILES:
        entry = data_dir / name
        if entry.is_file() and not entry.is_symlink():
            make_private_file(entry)
    if sqlite_path is None:
        return
    sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(sqlite_path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
    for suffix in ("", *SQLITE_SIDECARS):
        make_private_file(sqlite_path.with_name(sqlite_path.name + suffix))


def write_secret_file(path: Path, value: str) -> None:
    """Write ``value`` (and a newline) to ``path`` with mode 0600, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode applies to a new file only: an older 0644 one is narrowed too
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
