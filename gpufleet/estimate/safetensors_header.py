"""The tensor table of a safetensors model, from the file headers only.

A ``.safetensors`` file is ``u64 little-endian N`` + ``N`` bytes of JSON + the raw tensor data. The
JSON maps each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets into the
data part) and may hold ``"__metadata__"`` (string → string). A sharded model has
``model.safetensors.index.json`` whose ``weight_map`` names the shard of every tensor.

Remote files cost two range requests each (the 8 length bytes, then the JSON); no weight byte is
read. Invariants of a parsed header, checked so a broken file is a clear error and not a wrong
estimate: every dtype is known, ``end - begin`` equals the bytes its shape and dtype need, and the
header is at most ``MAX_HEADER_BYTES``.
"""

from __future__ import annotations

import json
import math
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpufleet.common.errors import InvalidInput
from gpufleet.common.units import MiB
from gpufleet.estimate.hf_files import ModelFiles
from gpufleet.estimate.sources import ByteSource, SourceError, open_source

MAX_HEADER_BYTES = 100 * MiB  # the format's own reader refuses more (safetensors' MAX_HEADER_SIZE)
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
# Bits per element of every safetensors dtype (the format's ``Dtype`` enum).
DTYPE_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "C64": 64,
}


class SafetensorsError(InvalidInput, ValueError):
    """A weights file or index is not valid safetensors; the message names the file and the fault."""

    code = "invalid_safetensors"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class SafetensorsHeader:
    """One file's header: its tensors in file order, its metadata, and the header's size in bytes."""

    name: str
    tensors: tuple[TensorInfo, ...]
    metadata: dict[str, str]
    header_bytes: int


@dataclass(frozen=True)
class WeightsSummary:
    """Every tensor of a model (all shards), with the totals an estimate needs."""

    tensors: tuple[TensorInfo, ...]
    files: tuple[str, ...]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @property
    def parameters(self) -> int:
        return sum(t.elements for t in self.tensors)

    @property
    def bytes_by_dtype(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for tensor in self.tensors:
            totals[tensor.dtype] += tensor.nbytes
        return dict(totals)


def read_header(source: ByteSource) -> SafetensorsHeader:
    """Parse the header of one safetensors file from a byte source (local file or HTTP ranges)."""
    prefix = source.read(0, 8)
    if len(prefix) < 8:
        raise SafetensorsError(f"{source.name}: not a safetensors file (shorter than its 8-byte header length)")
    (length,) = struct.unpack("<Q", prefix)
    if length > MAX_HEADER_BYTES:
        raise SafetensorsError(
            f"{source.name}: header length {length} bytes is over the {MAX_HEADER_BYTES // MiB} MiB limit "
            "(not a safetensors file, or a corrupt one)"
        )
    raw = source.read(8, length)
    if len(raw) < length:
        raise SafetensorsError(f"{source.name}: file ends inside its header ({len(raw)} of {length} bytes)")
    try:
        table = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SafetensorsError(f"{source.name}: header is not valid JSON ({exc})") from exc
    if not isinstance(table, dict):
        raise SafetensorsError(f"{source.name}: header is not a JSON object")
    metadata = table.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise SafetensorsError(f"{source.name}: __metadata__ is not an object")
    tensors = tuple(_tensor(source.name, name, entry) for name, entry in table.items())
    return SafetensorsHeader(source.name, tensors, {str(k): str(v) for k, v in metadata.items()}, length)


def _tensor(file: str, name: str, entry: Any) -> TensorInfo:
    if not isinstance(entry, dict):
        raise SafetensorsError(f"{file}: tensor {name!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_BITS:
        raise SafetensorsError(f"{file}: tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise SafetensorsError(f"{file}: tensor {name!r} has an invalid shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise SafetensorsError(f"{file}: tensor {name!r} has invalid data_offsets {offsets!r}")
    nbytes = offsets[1] - offsets[0]
    expected = -(-math.prod(shape) * DTYPE_BITS[dtype] // 8)
    if nbytes != expected:
        raise SafetensorsError(f"{file}: tensor {name!r} spans {nbytes} bytes but {dtype}{shape} needs {expected}")
    return TensorInfo(name, dtype, tuple(shape), nbytes)


def read_file_header(location: str | Path) -> SafetensorsHeader:
    """The header of one ``.safetensors`` file given by local path or http(s) URL."""
    source = open_source(location)
    try:
        return read_header(source)
    finally:
        source.close()


def weight_files(files: ModelFiles) -> list[str]:
    """The shard files of a model directory: from its index if it has one, else ``model.safetensors``."""
    index = files.read_json(INDEX_FILE, required=False)
    if index is None:
        if not files.is_remote:
            local = sorted(p.name for p in Path(files.url_or_path(".")).glob("*.safetensors"))
            if local:
                return local
        return [SINGLE_FILE]
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise SafetensorsError(f"{files.name}: {INDEX_FILE} has no weight_map")
    return sorted({str(shard) for shard in weight_map.values()})


def read_weights(location: str | Path) -> WeightsSummary:
    """Every tensor of the model directory at ``location`` (see ``hf_files``), headers only."""
    files = ModelFiles(location)
    tensors: list[TensorInfo] = []
    metadata: dict[str, str] = {}
    names = weight_files(files)
    for filename in names:
        try:
            source = files.open_file(filename)
        except SourceError as exc:
            raise SafetensorsError(f"{files.name}: cannot open weights file {filename}: {exc}") from exc
        try:
            header = read_header(source)
        finally:
            source.close()
        tensors.extend(header.tensors)
        metadata.update(header.metadata)
    seen: set[str] = set()
    for tensor in tensors:
        if tensor.name in seen:
            raise SafetensorsError(f"{files.name}: tensor {tensor.name!r} appears in more than one shard")
        seen.add(tensor.name)
    return WeightsSummary(tuple(tensors), tuple(names), metadata)
