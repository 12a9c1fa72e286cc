"""What an engine loads, and so which files of a source a deployment needs: ``LAYOUTS[engine.model_layout]``.

- ``gguf`` (llama.cpp): one GGUF file, picked by the deployment's glob, and the other shards of a
  split one (``selection.needed_files``); the engine is given the first file.
- ``hf_directory`` (vLLM): a Hugging Face model directory, the repository's top-level files that
  loading needs (``snapshot_files``); the engine is given the directory.

A layout also names the download (``key``): the same repository fetched for llama.cpp and for
vLLM are two different sets of files, cached and marked complete separately.

Invariants of ``snapshot_files``: ``config.json`` comes first and is required; weights are the
``*.safetensors`` files, or, only where a repository has none, its PyTorch ``*.bin``/``*.pt``/``*.pth``
(never both: they hold the same weights twice); never a ``*.gguf``; only files at the repository's
top level (vLLM loads from there; subfolders hold other formats, e.g. Meta's ``original/``);
nothing executable (``*.py``: gpufleet never passes ``--trust-remote-code``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from gpufleet.common.gguf_files import ModelFileError
from gpufleet.worker.downloads.local import confined, resolve_local
from gpufleet.worker.downloads.selection import needed_files

CONFIG = "config.json"
SAFETENSORS = ("*.safetensors",)
PYTORCH = ("*.bin", "*.pt", "*.pth")
# Configs, tokenizers (tokenizer.json, tokenizer.model, merges.txt, vocab.txt, *.tiktoken), chat templates.
COMPANIONS = ("*.json", "*.model", "*.txt", "*.tiktoken", "*.jinja")


class Layout(Protocol):
    name: str

    def key(self, source: str, repo: str | None, pattern: str | None) -> str:
        """The identity of the download (see the module's docstring)."""
        ...

    def needed(self, names: list[str], pattern: str | None, where: str) -> list[str]:
        """The files to fetch, the one the engine's path derives from first; raises ``ModelFileError``."""
        ...

    def entry(self, first: Path) -> Path:
        """What the engine is given, from the first needed file on disk."""
        ...

    def local(self, path: str, allowed: Sequence[Path]) -> Path:
        """What the engine is given for a ``local_path``, confined to ``allowed``; raises ``ModelFileError``."""
        ...


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def snapshot_files(names: list[str], where: str) -> list[str]:
    """The top-level files vLLM needs of a repository listing, ``config.json`` first."""
    top = sorted(n for n in names if "/" not in n)
    if CONFIG not in top:
        raise ModelFileError(
            f"{where} is not a Hugging Face model directory: no {CONFIG} at its top level "
            "(vLLM serves a directory with config.json and *.safetensors; use backend llama.cpp for GGUF)"
        )
    weights = [n for n in top if _matches(n, SAFETENSORS)] or [n for n in top if _matches(n, PYTORCH)]
    if not weights:
        raise ModelFileError(f"{where} has {CONFIG} but no weights (*.safetensors) at its top level")
    companions = [n for n in top if _matches(n, COMPANIONS) and n != CONFIG]
    return [CONFIG, *sorted(set(weights) | set(companions))]


class GgufFile:
    name = "gguf"

    def key(self, source: str, repo: str | None, pattern: str | None) -> str:
        return f"{source}:{repo}:{pattern or '*.gguf'}"

    def needed(self, names: list[str], pattern: str | None, where: str) -> list[str]:
        return needed_files(names, pattern, where)

    def entry(self, first: Path) -> Path:
        return first

    def local(self, path: str, allowed: Sequence[Path]) -> Path:
        return resolve_local(path, list(allowed))


class HfDirectory:
    name = "hf_directory"

    def key(self, source: str, repo: str | None, pattern: str | None) -> str:
        return f"{source}:{repo}:hf-directory"  # the glob picks GGUF files: it has no say here

    def needed(self, names: list[str], pattern: str | None, where: str) -> list[str]:
        return snapshot_files(names, where)

    def entry(self, first: Path) -> Path:
        return first.parent

    def local(self, path: str, allowed: Sequence[Path]) -> Path:
        """The directory (``local_path`` may name it or its ``config.json``); it and every file vLLM
        will open are confined after resolving, as a symlink inside may point out of ``allowed``."""
        roots = list(allowed)
        target = confined(Path(path).expanduser().resolve(), path, roots)
        directory = target.parent if target.is_file() and target.name == CONFIG else target
        if not directory.is_dir():
            what = "does not exist on this worker" if not target.exists() else "is a file, not a model directory"
            raise ModelFileError(f"local_path {path} {what}: vLLM serves a directory with {CONFIG} and *.safetensors")
        names = [p.name for p in directory.iterdir() if p.is_file()]
        for name in snapshot_files(names, f"local_path {directory}"):
            confined((directory / name).resolve(), str(directory / name), roots)
        return directory


GGUF: Layout = GgufFile()
LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (GGUF, HfDirectory())}
