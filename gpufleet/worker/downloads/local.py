"""Model files on the worker. This module: local paths, confined to the directories the admin allows.
(Downloads from hubs plug in beside it.)"""

from __future__ import annotations

from pathlib import Path

from gpufleet.common.gguf_files import ModelFileError, local_gguf


def resolve_local(path: str, allowed: list[Path]) -> Path:
    """The GGUF to load for a ``local_path`` (a file, or a directory's first GGUF), if it is allowed."""
    target = Path(path).expanduser().resolve()
    if not any(target == root or root in target.parents for root in allowed):
        roots = ", ".join(str(r) for r in allowed)
        raise ModelFileError(
            f"local_path {path} is outside the directories this worker allows ({roots}); "
            "start the worker with --allowed-model-dirs to allow it"
        )
    return Path(local_gguf(str(target), "on this worker"))
