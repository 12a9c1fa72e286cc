"""Model sources named by scheme, resolved to a URL that serves byte ranges.

- ``hf://owner/repo/path/to/file.gguf[@revision]`` → ``$HF_ENDPOINT/owner/repo/resolve/revision/path``
  (Hugging Face, or any mirror speaking its file API);
- ``ms://owner/repo/path/to/file.gguf[@revision]`` → ModelScope's file download API;
- ``ollama://name[:tag]`` → the model's GGUF layer in the Ollama registry (its manifest names the blob);
- ``http(s)://…`` and local paths are used as they are.
"""

from __future__ import annotations

import os

import httpx

from gpufleet.common.hubs import hf_endpoint, modelscope_endpoint
from gpufleet.estimate.sources import SourceError

OLLAMA_REGISTRY = "https://registry.ollama.ai"
OLLAMA_MODEL_MEDIA = "application/vnd.ollama.image.model"


def _split_repo(rest: str, scheme: str) -> tuple[str, str, str]:
    path, _, revision = rest.partition("@")
    parts = path.strip("/").split("/")
    if len(parts) < 3:
        raise SourceError(f"{scheme}://{rest}: expected {scheme}://OWNER/REPO/FILE.gguf")
    return "/".join(parts[:2]), "/".join(parts[2:]), revision


def resolve(location: str) -> str:
    """A URL or path the GGUF reader can open."""
    if location.startswith("hf://"):
        repo, filename, revision = _split_repo(location[5:], "hf")
        return f"{hf_endpoint()}/{repo}/resolve/{revision or 'main'}/{filename}"
    if location.startswith("ms://"):
        repo, filename, revision = _split_repo(location[5:], "ms")
        return f"{modelscope_endpoint()}/api/v1/models/{repo}/repo?Revision={revision or 'master'}&FilePath={filename}"
    if location.startswith("ollama://"):
        return _ollama_blob(location[len("ollama://") :])
    return location


def _ollama_blob(name: str) -> str:
    registry = os.environ.get("OLLAMA_REGISTRY", OLLAMA_REGISTRY).rstrip("/")
    model, _, tag = name.partition(":")
    if "/" not in model:
        model = f"library/{model}"
    url = f"{registry}/v2/{model}/manifests/{tag or 'latest'}"
    try:
        response = httpx.get(
            url,
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
            follow_redirects=True,
            timeout=30,
        )
    except httpx.HTTPError as exc:
        raise SourceError(f"cannot read the Ollama manifest {url}: {exc}") from exc
    if response.status_code != 200:
        raise SourceError(f"Ollama registry answered HTTP {response.status_code} for {name}")
    for layer in response.json().get("layers", []):
        if layer.get("mediaType") == OLLAMA_MODEL_MEDIA:
            return f"{registry}/v2/{model}/blobs/{layer['digest']}"
    raise SourceError(f"the Ollama manifest of {name} has no model layer")
