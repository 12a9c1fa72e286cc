"""Where the server reads a deployment's GGUF header from, to estimate its memory (llama.cpp).

- ``local_path``: the file (or, for a directory, its first GGUF; the first shard of a split one),
  read by the server process. It must be readable where the server runs: on the same machine or
  a shared filesystem.
- Hugging Face: ``hf://repo/file``; a glob in ``huggingface_filename`` is matched against the
  repository's file list (``$HF_ENDPOINT/api/models/{repo}``), preferring the first shard.
- ModelScope: ``ms://repo/file``; Ollama library: ``ollama://name:tag``.
Blocking (file system, HTTP): call from a thread.
"""

from __future__ import annotations

from functools import lru_cache

from gpufleet.common.gguf_files import ModelFileError, first_gguf, local_gguf
from gpufleet.engines.hub_listing import hf_names
from gpufleet.estimate.sources import SourceError
from gpufleet.schemas.models import ModelSpec

SERVER = "on the server (it must be readable here to estimate the model's memory)"


@lru_cache(maxsize=512)
def hf_file(repo: str, pattern: str | None) -> str:
    if pattern and not any(ch in pattern for ch in "*?["):
        return pattern
    names = list(hf_names(repo))
    return first_gguf(names, pattern or "*.gguf", f"Hugging Face repository {repo}")


def location_of(spec: ModelSpec) -> str:
    """``local_path`` file, ``hf://repo/file``, ``ms://repo/file`` or ``ollama://name:tag``."""
    try:
        if spec.local_path:
            return local_gguf(spec.local_path, SERVER)
        if spec.huggingface_repo_id:
            return f"hf://{spec.huggingface_repo_id}/{hf_file(spec.huggingface_repo_id, spec.huggingface_filename)}"
        if spec.modelscope_model_id:
            if not spec.modelscope_file_path:
                raise ModelFileError("modelscope_file_path is needed to estimate a ModelScope model")
            return f"ms://{spec.modelscope_model_id}/{spec.modelscope_file_path}"
        if spec.ollama_library_model_name:
            return f"ollama://{spec.ollama_library_model_name}"
    except SourceError as exc:
        raise ModelFileError(str(exc)) from exc
    raise ModelFileError(f"source {spec.source.value!r} lacks the fields that locate its file")
