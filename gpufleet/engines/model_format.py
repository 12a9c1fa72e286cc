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
import os
from pathlib import Path

import httpx

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


_LISTINGS: dict[str, tuple[str, ...]] = {}  # successful listings only: a failed one is asked again


def _hub_names(url: str) -> tuple[str, ...] | None:
    if url in _LISTINGS:
        return _LISTINGS[url]
    try:
        response = httpx.get(url, timeout=10, follow_redirects=True)
    except httpx.HTTPError as exc:
        logger.warning("cannot list %s to choose the backend: %s", url, exc)
        return None
    if response.status_code != 200:
        logger.warning("cannot list %s to choose the backend: HTTP %s", url, response.status_code)
        return None
    body = response.json()
    if "siblings" in body:  # Hugging Face
        names = tuple(str(s.get("rfilename", "")) for s in body.get("siblings") or [])
    else:  # ModelScope
        names = tuple(str(f.get("Path", "")) for f in (body.get("Data") or {}).get("Files") or [])
    _LISTINGS[url] = names
    return names


def source_format(spec: ModelSpec) -> str | None:
    """The format of the deployment's model; ``local_path`` must already be confined (``local_paths``)."""
    if spec.local_path:
        return local_format(Path(spec.local_path))
    if spec.huggingface_repo_id:
        if spec.huggingface_filename:
            return GGUF
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        names = _hub_names(f"{endpoint}/api/models/{spec.huggingface_repo_id}")
        return listed_format(list(names)) if names is not None else None
    if spec.modelscope_model_id:
        if spec.modelscope_file_path:
            return GGUF
        endpoint = os.environ.get("MODELSCOPE_ENDPOINT", "https://modelscope.cn").rstrip("/")
        names = _hub_names(f"{endpoint}/api/v1/models/{spec.modelscope_model_id}/repo/files?Recursive=true")
        return listed_format(list(names)) if names is not None else None
    return GGUF  # ollama library
