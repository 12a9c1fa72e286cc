"""The file names of a hub repository, from its listing API (no file is downloaded):
``$HF_ENDPOINT/api/models/{repo}`` (``siblings``) and
``$MODELSCOPE_ENDPOINT/api/v1/models/{repo}/repo/files?Recursive=true`` (``Data.Files``).

Successful listings are kept for the process (a failed one is asked again next time): the server
lists a repository to find its GGUF file and to choose the backend, often for the same deployment.
Blocking (HTTP): call from a thread.
"""

from __future__ import annotations

import httpx

from gpufleet.common.gguf_files import ModelFileError
from gpufleet.common.hubs import hf_endpoint, modelscope_endpoint

_LISTINGS: dict[str, tuple[str, ...]] = {}


def _names(repo: str, url: str) -> tuple[str, ...]:
    if url in _LISTINGS:
        return _LISTINGS[url]
    try:
        response = httpx.get(url, timeout=30, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise ModelFileError(f"cannot list the files of {repo} ({url}): {exc}") from exc
    if response.status_code != 200:
        raise ModelFileError(f"cannot list the files of {repo}: HTTP {response.status_code} from {url}")
    body = response.json()
    if "siblings" in body:  # Hugging Face
        names = tuple(str(s.get("rfilename", "")) for s in body.get("siblings") or [])
    else:  # ModelScope
        names = tuple(str(f.get("Path", "")) for f in (body.get("Data") or {}).get("Files") or [])
    _LISTINGS[url] = names
    return names


def hf_names(repo: str) -> tuple[str, ...]:
    """Every file of a Hugging Face repository. Raises ``ModelFileError`` saying what failed."""
    return _names(repo, f"{hf_endpoint()}/api/models/{repo}")


def modelscope_names(repo: str) -> tuple[str, ...]:
    """Every file of a ModelScope repository. Raises ``ModelFileError`` saying what failed."""
    return _names(repo, f"{modelscope_endpoint()}/api/v1/models/{repo}/repo/files?Recursive=true")
