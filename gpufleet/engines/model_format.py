"""Which file format a deployment's source holds: a GGUF (llama.cpp) or a Hugging Face safetensors
directory (vLLM). The API picks the backend of a deployment that names none from it, and refuses a
backend that cannot read it (``engines.engine_for_format``).

- ``local_path``: a ``.gguf`` file, or a directory with a GGUF → gguf; a directory with
  ``config.json`` and ``*.safetensors`` (and no GGUF) → safetensors; absent here → by its name.
- Hugging Face / ModelScope with a file name or pattern → gguf (patterns select GGUF files); without
  one, the repository's listing decides (``$HF_ENDPOINT/api/models/{repo}``,
  ``$MODELSCOPE_ENDPOINT/api/v1/models/{repo}/repo/files``). Ollama → gguf.
``None``: cannot tell (the listing failed, an empty directory): the default backend applies, as
before. Blocking (file system, HTTP): call from a thread; never from the scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from gpufleet.common.gguf_files import ModelFileError
from gpufleet.engines.hub_listing import hf_names, modelscope_names
from gpufleet.schemas.models import ModelSpec

GGUF = "gguf"
SAFETENSORS = "safetensors"
logger = logging.getLogger(__name__)


def listed_format(names: list[str]) -> str | None:
    """From a repository's or directory's file names (relative paths)."""
    if any(n.endswith(".gguf") for n in names):
        return GGUF
    if "config.json" in names and any(n.endswith(".safetensors") for n in names):
        return SAFETENSORS
    return None


def local_format(path: Path) -> str | None:
    if path.is_file() or not path.exists():
        return GGUF if path.name.endswith(".gguf") else None
    if next(path.rglob("*.gguf"), None) is not None:
        return GGUF
    return listed_format([p.name for p in path.iterdir()])


def _listed(list_names: Callable[[str], tuple[str, ...]], repo: str) -> str | None:
    try:
        return listed_format(list(list_names(repo)))
    except ModelFileError as exc:
        logger.warning("cannot choose the backend from the repository's files: %s", exc)
        return None


def source_format(spec: ModelSpec) -> str | None:
    """The format of the deployment's model; ``local_path`` must already be confined (``local_paths``)."""
    if spec.local_path:
        return local_format(Path(spec.local_path))
    if spec.huggingface_repo_id:
        if spec.huggingface_filename:
            return GGUF
        return _listed(hf_names, spec.huggingface_repo_id)
    if spec.modelscope_model_id:
        if spec.modelscope_file_path:
            return GGUF
        return _listed(modelscope_names, spec.modelscope_model_id)
    return GGUF  # ollama library
