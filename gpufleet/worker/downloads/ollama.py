"""Ollama library: an ``ollama_library`` deployment's GGUF, straight from the Ollama registry.

``ollama_library_model_name`` is ``[namespace/]model[:tag]`` (namespace ``library``, tag
``latest`` by default). The registry (``$OLLAMA_REGISTRY``, default registry.ollama.ai) speaks the
OCI distribution API: the manifest (``/v2/{namespace}/{model}/manifests/{tag}``) lists layers, and
the one of media type ``application/vnd.ollama.image.model`` is the GGUF, fetched as
``/v2/{namespace}/{model}/blobs/sha256:…`` (the registry redirects to a CDN).

Blobs are content-addressed: ``<cache>/ollama_library/blobs/sha256-<hex>``, shared by every tag
that points at the same weights. A download goes to ``….partial`` and resumes with ``Range``
where it stopped, whether the connection broke (retried here, with back-off) or the worker was
restarted (the next attempt continues the partial file). The sha256 is computed while the bytes
arrive and checked against the digest before the file is renamed into place; a mismatch deletes
the partial file.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from gpufleet.common.gguf_files import ModelFileError
from gpufleet.schemas.models import ModelPublic
from gpufleet.worker.downloads.environment import ollama_registry
from gpufleet.worker.downloads.layout import GGUF, Layout
from gpufleet.worker.downloads.meter import Meter
from gpufleet.worker.downloads.source import Plan

logger = logging.getLogger(__name__)

NAME = re.compile(
    r"^(?:(?P<namespace>[a-z0-9][a-z0-9._-]*)/)?(?P<model>[a-z0-9][a-z0-9._-]*)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]*))?$"
)
DIGEST = re.compile(r"^sha256:(?P<hex>[0-9a-f]{64})$")
MANIFEST_ACCEPT = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
MODEL_MEDIA = "application/vnd.ollama.image.model"
RETRIES = 5  # connection failures in a row before giving up (progress resets the count)
CHUNK = 1 << 20


def parse_name(name: str) -> tuple[str, str]:
    """``[namespace/]model[:tag]`` → (``namespace/model``, ``tag``); raises ``ModelFileError``."""
    match = NAME.match(name.strip())
    if match is None:
        raise ModelFileError(f"ollama_library_model_name {name!r} is not of the form [namespace/]model[:tag]")
    return f"{match['namespace'] or 'library'}/{match['model']}", match["tag"] or "latest"


class Ollama:
    def __init__(self, root: Path) -> None:
        self.root = root

    def key(self, model: ModelPublic, layout: Layout = GGUF) -> str:
        repository, tag = parse_name(model.ollama_library_model_name or "")
        return f"ollama_library:{repository}:{tag}"

    def plan(self, model: ModelPublic, layout: Layout = GGUF) -> Plan:
        if layout.name != GGUF.name:
            raise ModelFileError("the Ollama library serves GGUF files only: deploy this model with backend llama.cpp")
        repository, tag = parse_name(model.ollama_library_model_name or "")
        registry = ollama_registry()
        layer = _model_layer(registry, repository, tag)
        digest = DIGEST.match(str(layer.get("digest", "")))
        size = layer.get("size")
        if digest is None or not isinstance(size, int) or size <= 0:
            raise ModelFileError(f"the Ollama manifest of {repository}:{tag} has a malformed model layer: {layer}")
        path = self.root / "blobs" / f"sha256-{digest['hex']}"
        name = f"{repository}:{tag}"
        url = f"{registry}/v2/{repository}/blobs/sha256:{digest['hex']}"
        return Plan(sizes={name: size}, paths=(path,), fetch=partial(_fetch, url, digest["hex"], size, path, name))


def _model_layer(registry: str, repository: str, tag: str) -> dict[str, Any]:
    url = f"{registry}/v2/{repository}/manifests/{tag}"
    try:
        response = httpx.get(url, headers={"Accept": MANIFEST_ACCEPT}, follow_redirects=True, timeout=30)
    except httpx.HTTPError as exc:
        raise ModelFileError(f"cannot read the Ollama manifest {url}: {type(exc).__name__}: {exc}") from exc
    if response.status_code == 404:
        raise ModelFileError(f"Ollama model {repository}:{tag} was not found in the registry at {registry}")
    if response.status_code != 200:
        raise ModelFileError(f"the Ollama registry answered HTTP {response.status_code} for {url}")
    try:
        layers = response.json().get("layers") or []
    except (ValueError, AttributeError) as exc:
        raise ModelFileError(f"the Ollama manifest {url} is not a JSON manifest") from exc
    for layer in layers:
        if isinstance(layer, dict) and layer.get("mediaType") == MODEL_MEDIA:
            return layer
    raise ModelFileError(f"the Ollama manifest of {repository}:{tag} has no model layer ({MODEL_MEDIA})")


class _Partial:
    """The ``.partial`` file and the sha256 of its bytes so far (recomputed from disk on resume)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.hasher = hashlib.sha256()
        self.hashed = 0

    @property
    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def restart(self) -> None:
        self.path.unlink(missing_ok=True)
        self.hasher, self.hashed = hashlib.sha256(), 0

    def catch_up(self, meter: Meter) -> None:
        """Hash bytes already on disk that this process has not seen (a partial file from before)."""
        if self.hashed == self.size:
            return
        self.hasher, self.hashed = hashlib.sha256(), 0
        with self.path.open("rb") as handle:
            while block := handle.read(CHUNK):
                meter.check()
                self.hasher.update(block)
                self.hashed += len(block)


def _fetch(url: str, hex_digest: str, size: int, path: Path, name: str, meter: Meter) -> None:
    if path.is_file() and path.stat().st_size == size:  # renamed into place only after its digest matched
        meter.complete(name)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    part = _Partial(path.with_name(path.name + ".partial"))
    failures = 0
    with httpx.Client(timeout=httpx.Timeout(30.0, read=120.0), follow_redirects=True) as http:
        while part.size < size or part.hashed < size:
            before = part.size
            try:
                _stream(http, url, part, size, name, meter)
            except httpx.TransportError as exc:
                failures = 1 if part.size > before else failures + 1
                if failures > RETRIES:
                    last = f"{type(exc).__name__}: {exc}"
                    message = f"downloading {name} from {url} failed {failures} times in a row; last: {last}"
                    raise ModelFileError(message) from exc
                delay = min(0.25 * 2**failures, 30.0)
                logger.warning(
                    "download of %s interrupted at byte %d of %d (%s: %s); resuming in %.1fs",
                    name, part.size, size, type(exc).__name__, exc, delay,
                )  # fmt: skip
                time.sleep(delay)
    if part.hasher.hexdigest() != hex_digest:
        part.restart()
        raise ModelFileError(
            f"the download of {name} does not match its digest sha256:{hex_digest} (the partial file was removed; "
            "the next attempt downloads it again)"
        )
    part.path.replace(path)
    meter.complete(name)


def _stream(http: httpx.Client, url: str, part: _Partial, size: int, name: str, meter: Meter) -> None:
    """Append the rest of the blob to the partial file, hashing as it goes."""
    if part.size > size:
        part.restart()
    part.catch_up(meter)
    offset = part.size
    meter.set(name, offset)
    if offset == size:
        return
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with http.stream("GET", url, headers=headers) as response:
        if response.status_code == 404:
            raise ModelFileError(f"the Ollama registry has no blob for {name} ({url})")
        if response.status_code == 200 and offset:  # the range was ignored: start over
            part.restart()
            offset = 0
        elif response.status_code == 206:
            if not (response.headers.get("Content-Range") or "").startswith(f"bytes {offset}-"):
                raise ModelFileError(f"{url} answered a range other than the one asked for (bytes {offset}-)")
        elif response.status_code != 200:
            raise ModelFileError(f"the Ollama registry answered HTTP {response.status_code} for {url}")
        with part.path.open("ab" if offset else "wb") as out:
            for (
                chunk
            ) in response.iter_bytes():  # as it arrives: a buffered chunk would be lost if the connection breaks
                out.write(chunk)
                part.hasher.update(chunk)
                part.hashed += len(chunk)
                meter.add(name, len(chunk))
    if part.size < size:
        raise httpx.ReadError(f"the connection ended after {part.size} of {size} bytes")
