"""The worker's own credential, kept in ``<data-dir>/worker.json`` (mode 0600).

With it a restarted worker is the same worker again (same id, same devices, same
instances), not a name clash — even under another ``--worker-name``, which renames it:
the agent sends it beside the cluster token when it registers. ``worker_name`` is the
name last registered, rewritten after a rename. Without it (first start, or the admin
deleted the worker) the worker registers with the cluster token and stores the
credential it gets back.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class StoredCredential:
    worker_id: int
    worker_name: str
    credential: str


def load(path: Path) -> StoredCredential | None:
    try:
        data = json.loads(path.read_text())
        return StoredCredential(int(data["worker_id"]), str(data["worker_name"]), str(data["credential"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RuntimeError(f"worker credential file {path} is unreadable ({exc}); delete it to register anew") from exc


def save(path: Path, stored: StoredCredential) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(stored), handle)
    os.replace(temporary, path)


def forget(path: Path) -> None:
    path.unlink(missing_ok=True)
