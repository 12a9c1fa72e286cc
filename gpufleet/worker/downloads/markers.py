"""On-disk completeness markers: which source keys are fully downloaded, and where.

A marker is written only after every file of a download is in place (renamed from its partial
name, digests checked where the source gives them), so its presence means the files are whole.
It records each file's size too: a file changed or removed since (someone cleaned the cache)
makes the marker invalid, and the next request downloads again. Markers live beside the cache as
``<cache>/.complete/<sha256 of the key>.json``, written atomically (temporary file + rename).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)


class Markers:
    def __init__(self, cache: Path) -> None:
        self.root = cache / ".complete"

    def _file(self, key: str) -> Path:
        return self.root / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"

    def read(self, key: str) -> list[Path] | None:
        """The files of a complete download of ``key``, or None when it must be downloaded."""
        marker = self._file(key)
        try:
            data = json.loads(marker.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable download marker %s: %s", marker, exc)
            return None
        if data.get("key") != key:
            return None
        paths = [Path(entry["path"]) for entry in data.get("files", [])]
        for entry, path in zip(data.get("files", []), paths, strict=True):
            try:
                if path.stat().st_size != entry["size"]:
                    return None
            except OSError:
                return None
        return paths or None

    def write(self, key: str, paths: list[Path]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        body = {"key": key, "files": [{"path": str(p), "size": p.stat().st_size} for p in paths]}
        marker = self._file(key)
        temporary = marker.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(body, indent=1))
        temporary.replace(marker)
