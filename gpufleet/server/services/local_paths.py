"""``local_path`` deployments as the server sees them: confined to ``--allowed-model-dirs`` before any read.

A ``local_path`` names a file on the workers. The server reads its GGUF header too, to estimate the
model's memory, when the same path is readable here (one machine, or a shared filesystem). Without
a check that read would make the server an oracle for any file its user can open: ``/etc/shadow``
answered "is not a GGUF file (it starts with b'root'…)". So, at create, update and preview:

1. the path is resolved (symlinks, ``..``) and must lie inside an allowed directory, or the request
   is refused (422, naming the allowed directories: only admins deploy models) before anything is
   read; a directory's GGUF and the other shards of a split GGUF are resolved and checked the same way,
   and so is every file of a safetensors directory (vLLM);
2. a path absent here is accepted as it is (it may exist on the workers only): the server cannot
   estimate it, the preview says so, and its instances stay pending saying why;
3. a file present here is read (header only) and must be a complete GGUF: a file that is not one,
   or that is shorter than its tensors, is refused at create with the reason (the preview says the same).

The workers enforce their own ``--allowed-model-dirs`` again before loading (``worker/downloads/local.py``).
Blocking (filesystem): call from a thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gpufleet.common.errors import InvalidInput
from gpufleet.common.gguf_files import ModelFileError, local_gguf
from gpufleet.common.paths import inside
from gpufleet.engines import CannotEstimate
from gpufleet.engines.gguf_location import SERVER
from gpufleet.engines.model_format import SAFETENSORS, local_format
from gpufleet.estimate.gguf import GGUFError, read_header, shard_locations
from gpufleet.estimate.sources import FileSource, SourceError
from gpufleet.schemas.models import ModelSpec


class LocalPathNotAllowed(InvalidInput):
    """A ``local_path`` outside the directories the server allows; the message names them (for admins)."""

    code = "local_path_not_allowed"


def _confined(given: str, target: Path, roots: Sequence[Path]) -> None:
    if inside(target, roots):
        return
    allowed = ", ".join(str(r) for r in roots) or "none"
    shown = given if str(target) == given else f"{given} (resolved: {target})"
    raise LocalPathNotAllowed(
        f"local_path {shown} is outside the directories models may come from ({allowed}); "
        "move the model there, or start the server and its workers with --allowed-model-dirs to allow its directory",
        field="local_path",
    )


def confined_path(spec: ModelSpec, roots: Sequence[Path]) -> Path | None:
    """The resolved ``local_path`` (None for other sources), refused when outside ``roots``. Reads nothing."""
    if not spec.local_path:
        return None
    roots = [Path(r).expanduser().resolve() for r in roots]
    target = Path(spec.local_path).expanduser().resolve()  # follows every symlink, folds "..": no read
    _confined(spec.local_path, target, roots)
    return target


def confined_spec(spec: ModelSpec, roots: Sequence[Path]) -> ModelSpec:
    """``spec`` with its ``local_path`` replaced by the resolved GGUF inside ``roots`` that the server may read.

    Unchanged for other sources and for a path absent here. ``LocalPathNotAllowed`` when the path, a
    directory's GGUF or a shard of a split GGUF leads outside ``roots``. Reads no file's content.
    """
    target = confined_path(spec, roots)
    if target is None:
        return spec
    roots = [Path(r).expanduser().resolve() for r in roots]
    if not target.exists():
        return spec  # perhaps on the workers only: the estimator says it is not readable here
    if target.is_dir() and local_format(target) == SAFETENSORS:  # a vLLM directory: each of its files too
        for path in sorted(target.iterdir()):
            _confined(str(path), path.resolve(), roots)
        return spec.model_copy(update={"local_path": str(target)})
    try:
        picked = Path(local_gguf(str(target), SERVER)).resolve()
    except ModelFileError as exc:
        raise CannotEstimate(f"cannot estimate the model's memory: {exc}", field="local_path") from exc
    for shard in (picked, *_shards(picked)):
        _confined(str(shard), shard, roots)
    return spec.model_copy(update={"local_path": str(picked)})


def server_spec(spec: ModelSpec, roots: Sequence[Path]) -> ModelSpec:
    """``confined_spec``, and its file (each shard) a complete GGUF: ``CannotEstimate`` with the reason if not.

    For preview and create; the scheduler, which asks again and again, takes ``confined_spec``."""
    confined = confined_spec(spec, roots)
    if confined is not spec and confined.local_path and Path(confined.local_path).is_file():
        for shard in _shards(Path(confined.local_path)):
            check_complete(shard)
    return confined


def _shards(first: Path) -> list[Path]:
    return [Path(s).resolve() for s in shard_locations(str(first))]


def check_complete(path: Path) -> None:
    """A GGUF whose file holds every tensor its header lists; ``CannotEstimate`` with the reason if not.

    The estimate reads the header only, so a copy cut short in its weights would be placed and
    only fail when the engine loads it."""
    try:
        source = FileSource(path)
    except SourceError as exc:
        raise CannotEstimate(f"cannot estimate the model's memory: {exc}", field="local_path") from exc
    try:
        header = read_header(source)
        size = source.size
    except GGUFError as exc:
        raise CannotEstimate(f"cannot estimate the model's memory: {exc}", field="local_path") from exc
    finally:
        source.close()
    needed = header.data_offset + max((t.offset + t.nbytes for t in header.tensors), default=0)
    if size < needed:
        raise CannotEstimate(
            f"local_path {path} is truncated: its header lists tensors up to byte {needed}, "
            f"but the file has {size} bytes; copy the model file again",
            field="local_path",
        )
