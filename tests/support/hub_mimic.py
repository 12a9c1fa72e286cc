"""A loopback HTTP server that speaks the parts of the model hubs' APIs that gpufleet uses.

One server answers three dialects, each from files the test registers:

- Hugging Face: ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}`` (model info
  with ``sha`` and ``siblings``), ``GET /api/models/{repo}/tree/{rev}[/{dir}]?recursive=…`` (file
  entries with size and LFS sha256), ``HEAD``/``GET /{repo}/resolve/{rev}/{path}`` (``ETag``,
  ``X-Repo-Commit``, ``Range``). Errors carry ``X-Error-Code`` like the Hub's (``RepoNotFound``,
  ``RevisionNotFound``, ``EntryNotFound``), which ``huggingface_hub`` maps to its exceptions.
- ModelScope: ``GET /api/v1/models/{repo}/repo/files?Revision=&Recursive=`` (the listing) and
  ``HEAD``/``GET /api/v1/models/{repo}/repo?Revision=&FilePath=`` (the file, with ``Range``).
- Ollama registry: ``GET /v2/{namespace}/{name}/manifests/{tag}`` and
  ``GET /v2/{namespace}/{name}/blobs/{digest}``, which redirects (307) to ``/cdn/{digest}`` like
  the real registry's CDN hand-off; that answers ``Range``.

Every request is logged (method, path, ``Range``, bytes sent), so a test can tell a download (a
``GET`` of the whole file, or of its rest from an offset) from a header read (a closed range).
``cut_once[path_suffix] = n`` makes the next download of that file stop after ``n`` bytes by
closing the connection, to test resuming; ``pause`` slows every file down, to catch a download
while it runs.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

OLLAMA_MODEL = "application/vnd.ollama.image.model"
MANIFEST_MEDIA = "application/vnd.docker.distribution.manifest.v2+json"

HF_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
HF_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<dir>.+))?$")
HF_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
MS_FILES = re.compile(r"^/api/v1/models/(?P<repo>[^/]+/[^/]+)/repo/files$")
MS_FILE = re.compile(r"^/api/v1/models/(?P<repo>[^/]+/[^/]+)/repo$")
OLLAMA_MANIFEST = re.compile(r"^/v2/(?P<name>[^/]+/[^/]+)/manifests/(?P<tag>[^/]+)$")
OLLAMA_BLOB = re.compile(r"^/v2/(?P<name>[^/]+/[^/]+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")
CDN = re.compile(r"^/cdn/(?P<digest>sha256:[0-9a-f]{64})$")
CLOSED_RANGE = re.compile(r"^bytes=\d+-\d+$")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    range: str | None
    sent: int  # body bytes sent

    @property
    def is_download(self) -> bool:
        """A GET of a file's bytes that is not a bounded header read (``bytes=a-b``)."""
        return self.method == "GET" and self.sent > 0 and not (self.range and CLOSED_RANGE.match(self.range))


@dataclass
class Repo:
    root: Path
    commit: str

    def files(self) -> dict[str, Path]:
        return {str(p.relative_to(self.root)): p for p in sorted(self.root.rglob("*")) if p.is_file()}


@dataclass
class MimicHub:
    url: str = ""
    hits: list[Hit] = field(default_factory=list)
    hf_repos: dict[str, Repo] = field(default_factory=dict)
    ms_repos: dict[str, Repo] = field(default_factory=dict)
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)  # "namespace/name:tag" → manifest
    blobs: dict[str, Path] = field(default_factory=dict)  # "sha256:…" → file
    cut_once: dict[str, int] = field(default_factory=dict)  # path suffix → bytes to send before cutting
    pause: float = 0.0  # seconds to wait after each 64 KiB of a file: a slow link, to catch a download midway
    lock: threading.Lock = field(default_factory=threading.Lock)

    def huggingface(self, repo: str, root: Path) -> None:
        """Serve the files under ``root`` as Hugging Face repository ``repo`` (``owner/name``)."""
        self.hf_repos[repo] = Repo(root, hashlib.sha1(repo.encode()).hexdigest())

    def modelscope(self, repo: str, root: Path) -> None:
        self.ms_repos[repo] = Repo(root, hashlib.sha1(repo.encode()).hexdigest())

    def ollama(self, name: str, gguf: Path) -> str:
        """Serve ``gguf`` as Ollama model ``name`` (``[namespace/]model:tag``); returns its digest."""
        model, _, tag = name.partition(":")
        if "/" not in model:
            model = f"library/{model}"
        digest = f"sha256:{sha256_of(gguf)}"
        template = f"sha256:{hashlib.sha256(b'{{ .Prompt }}').hexdigest()}"
        self.blobs[digest] = gguf
        self.manifests[f"{model}:{tag or 'latest'}"] = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": template, "size": 2},
            "layers": [
                {"mediaType": OLLAMA_MODEL, "digest": digest, "size": gguf.stat().st_size},
                {"mediaType": "application/vnd.ollama.image.template", "digest": template, "size": 14},
            ],
        }
        return digest

    def downloads(self, suffix: str) -> list[Hit]:
        """Requests that fetched the bytes of a file whose path ends with ``suffix``."""
        with self.lock:
            return [h for h in self.hits if h.is_download and unquote(h.path).endswith(suffix)]

    def log(self, hit: Hit) -> None:
        with self.lock:
            self.hits.append(hit)


class _Handler(http.server.BaseHTTPRequestHandler):
    hub: MimicHub
    protocol_version = "HTTP/1.1"

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    def log_message(self, *_: object) -> None:
        return

    # --- routing --------------------------------------------------------------------------------
    def _route(self, head: bool) -> None:
        url = urlparse(self.path)
        path, query = unquote(url.path), {k: v[-1] for k, v in parse_qs(url.query).items()}
        sent = 0
        try:
            sent = self._dispatch(path, query, head)
        finally:
            self.hub.log(Hit(self.command, url.path, self.headers.get("Range"), sent))

    def _dispatch(self, path: str, query: dict[str, str], head: bool) -> int:
        hub = self.hub
        if match := HF_TREE.match(path):
            repo = self._hf_repo(match["repo"], match["rev"])
            return self._json(_hf_tree(repo, match["dir"], query.get("recursive", "").lower() == "true")) if repo else 0
        if match := HF_INFO.match(path):
            repo = self._hf_repo(match["repo"], match["rev"])
            if repo is None:
                return 0
            siblings = [{"rfilename": name} for name in repo.files()]
            return self._json({"id": match["repo"], "modelId": match["repo"], "sha": repo.commit, "siblings": siblings})
        if match := HF_RESOLVE.match(path):
            repo = self._hf_repo(match["repo"], match["rev"])
            if repo is None:
                return 0
            target = repo.files().get(match["path"])
            if target is None:
                return self._error(404, "Entry not found", {"X-Error-Code": "EntryNotFound"})
            etag = sha256_of(target)
            headers = {"ETag": f'"{etag}"', "X-Linked-Etag": f'"{etag}"', "X-Repo-Commit": repo.commit}
            return self._file(target, head, headers)
        if match := MS_FILES.match(path):
            ms = hub.ms_repos.get(match["repo"])
            if ms is None:
                return self._json({"Code": 10010205001, "Message": f"model {match['repo']} not found"}, 404)
            files = [
                {
                    "Name": Path(name).name,
                    "Path": name,
                    "Size": p.stat().st_size,
                    "Sha256": sha256_of(p),
                    "Type": "blob",
                }
                for name, p in ms.files().items()
            ]
            return self._json({"Code": 200, "Data": {"Files": files}, "Success": True})
        if match := MS_FILE.match(path):
            ms = hub.ms_repos.get(match["repo"])
            if ms is None:
                return self._json({"Code": 10010205001, "Message": f"model {match['repo']} not found"}, 404)
            target = ms.files().get(query.get("FilePath", ""))
            if target is None:
                return self._json({"Code": 10010205001, "Message": "file not found"}, 404)
            return self._file(target, head, {})
        if match := OLLAMA_MANIFEST.match(path):
            manifest = hub.manifests.get(f"{match['name']}:{match['tag']}")
            if manifest is None:
                return self._json({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}, 404)
            return self._json(manifest, content_type=MANIFEST_MEDIA)
        if match := OLLAMA_BLOB.match(path):
            if match["digest"] not in hub.blobs:
                return self._json({"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]}, 404)
            self.send_response(307)
            self.send_header("Location", f"/cdn/{match['digest']}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return 0
        if match := CDN.match(path):
            blob = hub.blobs.get(match["digest"])
            return self._file(blob, head, {}) if blob else self._error(404, "not found", {})
        return self._error(404, "not found", {})

    def _hf_repo(self, name: str, revision: str | None) -> Repo | None:
        repo = self.hub.hf_repos.get(name)
        if repo is None:
            self._error(404, "Repository not found", {"X-Error-Code": "RepoNotFound"})
            return None
        if revision not in (None, "main", repo.commit):
            self._error(404, "Revision not found", {"X-Error-Code": "RevisionNotFound", "X-Repo-Commit": repo.commit})
            return None
        return repo

    # --- answers --------------------------------------------------------------------------------
    def _json(self, body: Any, status: int = 200, content_type: str = "application/json") -> int:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        return 0

    def _error(self, status: int, message: str, headers: dict[str, str]) -> int:
        payload = json.dumps({"error": message}).encode()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        return 0

    def _file(self, target: Path, head: bool, headers: dict[str, str]) -> int:
        size = target.stat().st_size
        requested = re.match(r"^bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
        start, end = (int(requested[1]), int(requested[2] or size - 1)) if requested else (0, size - 1)
        if requested and start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return 0
        end = min(end, size - 1)
        length = end - start + 1
        self.send_response(206 if requested else 200)
        for key, value in {**headers, "Accept-Ranges": "bytes", "Content-Length": str(length)}.items():
            self.send_header(key, value)
        if requested:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head:
            return 0
        cut = self._take_cut()
        sent = 0
        with target.open("rb") as handle:
            handle.seek(start)
            while sent < length:
                chunk = handle.read(min(1 << 16, length - sent, (cut - sent) if cut is not None else 1 << 16))
                if not chunk:
                    break
                try:
                    self.wfile.write(chunk)
                    if self.hub.pause:
                        self.wfile.flush()
                        time.sleep(self.hub.pause)
                except (BrokenPipeError, ConnectionResetError):  # the client went away (a cancelled download)
                    self.close_connection = True
                    break
                sent += len(chunk)
                if cut is not None and sent >= cut:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)  # cut mid-body: the client sees a short read
                    break
        return sent

    def _take_cut(self) -> int | None:
        with self.hub.lock:
            for suffix, limit in list(self.hub.cut_once.items()):
                if self.path.split("?")[0].endswith(suffix) or unquote(self.path).endswith(suffix):
                    del self.hub.cut_once[suffix]
                    return limit
        return None


def _hf_tree(repo: Repo, directory: str | None, recursive: bool) -> list[dict[str, Any]]:
    prefix = f"{directory.strip('/')}/" if directory else ""
    entries: dict[str, dict[str, Any]] = {}
    for name, path in repo.files().items():
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix) :]
        if "/" in rest and not recursive:
            folder = prefix + rest.split("/", 1)[0]
            entries[folder] = {
                "type": "directory",
                "oid": hashlib.sha1(folder.encode()).hexdigest(),
                "size": 0,
                "path": folder,
            }
            continue
        size = path.stat().st_size
        entries[name] = {
            "type": "file",
            "oid": hashlib.sha1(name.encode()).hexdigest(),
            "size": size,
            "path": name,
            "lfs": {"oid": sha256_of(path), "size": size, "pointerSize": 134},
        }
    return list(entries.values())


@contextmanager
def mimic_hub() -> Iterator[MimicHub]:
    """A running mimic on a free loopback port; point ``HF_ENDPOINT``, ``MODELSCOPE_ENDPOINT`` and
    ``OLLAMA_REGISTRY`` at ``hub.url``."""
    hub = MimicHub()
    handler = type("Handler", (_Handler,), {"hub": hub})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True, name="mimic-hub")
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
