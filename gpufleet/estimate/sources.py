"""Where GGUF bytes come from: a local file, or a remote file read with HTTP range requests.

The estimator only needs the header (metadata and tensor table), never the
weights, so a remote source fetches the first chunk and then more only while
the header parser asks for it. A 140 GB model costs a few megabytes of traffic.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import httpx

from gpufleet.common.errors import InvalidInput


class SourceError(InvalidInput, ValueError):
    """The bytes could not be read; the message names the file or URL and the reason."""


class ByteSource(Protocol):
    name: str

    def read(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``offset``; fewer only at the end of the file."""
        ...


class FileSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        try:
            self._handle = path.open("rb")
        except OSError as exc:
            raise SourceError(f"cannot open {path}: {exc.strerror}") from exc

    def read(self, offset: int, size: int) -> bytes:
        self._handle.seek(offset)
        return self._handle.read(size)

    def close(self) -> None:
        self._handle.close()

    @property
    def size(self) -> int:
        return os.fstat(self._handle.fileno()).st_size


class HttpRangeSource:
    """Reads byte ranges of a remote file (Hugging Face, ModelScope, an Ollama blob, any HTTP server)."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 30.0) -> None:
        self.url = url
        self.name = url
        self._client = httpx.Client(follow_redirects=True, timeout=timeout, headers=headers or {})

    def read(self, offset: int, size: int) -> bytes:
        if size <= 0:
            return b""
        try:
            response = self._client.get(self.url, headers={"Range": f"bytes={offset}-{offset + size - 1}"})
        except httpx.HTTPError as exc:
            raise SourceError(f"cannot read {self.url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 416:
            return b""  # the range starts past the end of the file
        if response.status_code == 200:
            # The server ignored the range and sent the whole file: take what was asked for.
            return response.content[offset : offset + size]
        if response.status_code != 206:
            raise SourceError(f"cannot read {self.url}: HTTP {response.status_code}")
        return response.content

    def close(self) -> None:
        self._client.close()


def open_source(location: str | Path) -> FileSource | HttpRangeSource:
    text = str(location)
    if text.startswith(("http://", "https://")):
        return HttpRangeSource(text)
    return FileSource(Path(text).expanduser())
