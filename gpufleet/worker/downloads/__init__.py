"""Model files on the worker: where the engine's GGUF comes from, for each deployment source.

``ModelFiles.path_for(model, progress)`` is the one entry point the supervisor uses: it returns
the local path of the GGUF to hand to the engine (the first shard of a split model), fetching it
first when the source is a hub. ``progress(percent)`` is called while a download runs; the caller
rate-limits what it reports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from gpufleet.common.gguf_files import ModelFileError
from gpufleet.schemas.models import ModelPublic
from gpufleet.worker.downloads.local import resolve_local

Progress = Callable[[float], Awaitable[None]]


class ModelFiles:
    def __init__(self, data_dir: Path, allowed_model_dirs: list[Path]) -> None:
        self.cache = data_dir / "models"
        self.allowed_model_dirs = allowed_model_dirs

    async def path_for(self, model: ModelPublic, progress: Progress) -> Path:
        """The GGUF to load for ``model``; raises ``ModelFileError`` saying what is wrong."""
        if str(model.source) == "local_path" and model.local_path:
            return resolve_local(model.local_path, self.allowed_model_dirs)
        raise ModelFileError(f"model source {model.source} is not supported by this worker yet")
