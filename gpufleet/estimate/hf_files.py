"""Where the files of a Hugging Face-format model directory are, locally or on a hub.

A vLLM model is a directory (``config.json``, ``*.safetensors``, maybe an index), not one file, so
its location names the directory and each file is found under it:

- a local directory path;
- ``hf://owner/repo[@revision]`` and ``ms://owner/repo[@revision]``: each file becomes
  ``hf://owner/repo/FILE@revision``, resolved by ``remote.resolve`` (the same hub URL rules as GGUF);
- an ``http(s)://`` base URL: each file is ``BASE/FILE``.

Small JSON files (config, index) are read whole; weights files are only ever opened as a byte source
(``open_file``), so their headers can be read with range requests and nothing more.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from gpufleet.common.units import MiB
from gpufleet.estimate.remote import resolve
from gpufleet.estimate.sources import FileSource, HttpRangeSource, SourceError

MAX_JSON_BYTES = 64 * MiB  # a config or an index is kilobytes; more is not a model directory


class ModelFiles:
    """One model directory; ``name`` is the location as given, for messages."""

    def __init__(self, location: str | Path) -> None:
        self.name = str(location)
        self._scheme, self._base, self._revision = _parse(self.name)

    @property
    def is_remote(self) -> bool:
        return self._scheme != "local"

    def url_or_path(self, filename: str) -> str:
        """Where one file of the directory is: a local path or a URL serving byte ranges."""
        if self._scheme == "local":
            return str(Path(self._base).expanduser() / filename)
        if self._scheme in ("hf", "ms"):
            revision = f"@{self._revision}" if self._revision else ""
            return resolve(f"{self._scheme}://{self._base}/{filename}{revision}")
        return f"{self._base}/{filename}"

    def open_file(self, filename: str) -> FileSource | HttpRangeSource:
        target = self.url_or_path(filename)
        if self.is_remote:
            return HttpRangeSource(target)
        return FileSource(Path(target))

    def read_json(self, filename: str, *, required: bool = True) -> dict[str, Any] | None:
        """The parsed JSON object of a small file; None when it is absent and not ``required``."""
        raw = self._read_small(filename, required=required)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SourceError(f"{self.name}: {filename} is not valid JSON ({exc})") from exc
        if not isinstance(value, dict):
            raise SourceError(f"{self.name}: {filename} is not a JSON object")
        return value

    def _read_small(self, filename: str, *, required: bool) -> bytes | None:
        target = self.url_or_path(filename)
        if not self.is_remote:
            path = Path(target)
            if not path.is_file():
                if required:
                    raise SourceError(f"{self.name}: no {filename} (looked for {path})")
                return None
            if path.stat().st_size > MAX_JSON_BYTES:
                raise SourceError(f"{self.name}: {filename} is larger than {MAX_JSON_BYTES // MiB} MiB")
            return path.read_bytes()
        try:
            response = httpx.get(
                target, headers={"Range": f"bytes=0-{MAX_JSON_BYTES}"}, follow_redirects=True, timeout=30
            )
        except httpx.HTTPError as exc:
            raise SourceError(f"cannot read {target}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 404 and not required:
            return None
        if response.status_code not in (200, 206):
            raise SourceError(f"{self.name}: cannot read {filename}: HTTP {response.status_code} from {target}")
        if len(response.content) > MAX_JSON_BYTES:
            raise SourceError(f"{self.name}: {filename} is larger than {MAX_JSON_BYTES // MiB} MiB")
        return response.content


def _parse(location: str) -> tuple[str, str, str]:
    for scheme in ("hf", "ms"):
        prefix = f"{scheme}://"
        if location.startswith(prefix):
            path, _, revision = location[len(prefix) :].partition("@")
            parts = [p for p in path.strip("/").split("/") if p]
            if len(parts) != 2:
                raise SourceError(f"{location}: expected {prefix}OWNER/REPO[@REVISION] for a model directory")
            return scheme, "/".join(parts), revision
    if location.startswith(("http://", "https://")):
        return "http", location.rstrip("/"), ""
    return "local", location, ""
