"""Model files on the worker. This module: local paths, confined to the directories the admin allows.
(Downloads from hubs plug in beside it.) A GGUF is found here; a vLLM model directory is checked by
``layout.HfDirectory`` with the same confinement."""

from __future__ import annotations

from pathlib import Path

from gpufleet.common.gguf_files import ModelFileError, local_gguf
from gpufleet.common.paths import inside
from gpufleet.estimate.gguf import shard_locations


def resolve_local(path: str, allowed: list[Path]) -> Path:
    """The GGUF to load for a ``local_path`` (a file, or a directory's first GGUF), if it is allowed.

    The given path, the file finally chosen and a split GGUF's other shards are all confined after
    resolving: a directory inside the allowed dirs may hold a symlink that points out of them."""
    target = confined(Path(path).expanduser().resolve(), path, allowed)
    chosen = Path(local_gguf(str(target), "on this worker"))
    for shard in shard_locations(str(chosen)):  # llama-server opens a split GGUF's other shards itself
        confined(Path(shard).resolve(), shard, allowed)
    return chosen


def confined(resolved: Path, shown: str, allowed: list[Path]) -> Path:
    if not inside(resolved, allowed):
        roots = ", ".join(str(r) for r in allowed)
        raise ModelFileError(
            f"local_path {shown} is outside the directories this worker allows ({roots}); "
            "start the worker with --allowed-model-dirs to allow it"
        )
    return resolved
