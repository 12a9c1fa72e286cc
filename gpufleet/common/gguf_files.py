"""Finding the GGUF file to load in a path: the file itself, or a directory's first GGUF (the first
shard of a split one). Shared by the server (to estimate) and the worker (to run)."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from gpufleet.common.errors import InvalidInput

SHARD = re.compile(r"-(\d{5})-of-\d{5}\.gguf$")


class ModelFileError(InvalidInput, ValueError):
    """The model's file cannot be found or read; the message says where we looked."""


def first_gguf(names: list[str], pattern: str, where: str) -> str:
    matches = sorted(n for n in names if fnmatch.fnmatch(n, pattern) or fnmatch.fnmatch(n.rsplit("/", 1)[-1], pattern))
    matches = [m for m in matches if m.endswith(".gguf")]
    if not matches:
        raise ModelFileError(f"no GGUF file matching {pattern!r} in {where}")
    firsts = []
    for name in matches:
        shard = SHARD.search(name)
        if shard is None or shard.group(1) == "00001":
            firsts.append(name)
    return (firsts or matches)[0]


def local_gguf(path: str, where: str) -> str:
    """``where`` completes "does not exist …" in the error, e.g. "on this worker"."""
    target = Path(path)
    if target.is_file():
        return str(target)
    if target.is_dir():
        names = [str(p.relative_to(target)) for p in target.rglob("*.gguf")]
        return str(target / first_gguf(names, "*.gguf", str(target)))
    raise ModelFileError(f"local_path {path} does not exist {where}")
