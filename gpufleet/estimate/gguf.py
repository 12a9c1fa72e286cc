"""Read a GGUF file's metadata and tensor table without touching its weights.

The format (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md)::

    "GGUF" u32 version  u64 n_tensors  u64 n_kv
    n_kv × (string key, u32 value type, value)
    n_tensors × (string name, u32 n_dims, u64 dims[n_dims], u32 ggml type, u64 offset)
    padding to ``general.alignment`` (default 32), then the tensor data

The ``gguf`` package (from llama.cpp) supplies the type tables; its reader maps
the whole file into memory, which a remote or sparse file cannot offer, so this
module parses the header as a stream over a ``ByteSource`` and stops at the data.
Large arrays (a 150 000-token vocabulary) are counted, not kept.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

from gpufleet.common.errors import InvalidInput
from gpufleet.estimate.remote import resolve
from gpufleet.estimate.sources import ByteSource, SourceError, open_source

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
KEEP_ARRAY_ITEMS = 4096  # longer arrays keep only their length
CHUNK = 1 << 20
SPLIT_NAME = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")

SCALARS: dict[int, struct.Struct] = {
    GGUFValueType.UINT8: struct.Struct("<B"),
    GGUFValueType.INT8: struct.Struct("<b"),
    GGUFValueType.UINT16: struct.Struct("<H"),
    GGUFValueType.INT16: struct.Struct("<h"),
    GGUFValueType.UINT32: struct.Struct("<I"),
    GGUFValueType.INT32: struct.Struct("<i"),
    GGUFValueType.FLOAT32: struct.Struct("<f"),
    GGUFValueType.BOOL: struct.Struct("<?"),
    GGUFValueType.UINT64: struct.Struct("<Q"),
    GGUFValueType.INT64: struct.Struct("<q"),
    GGUFValueType.FLOAT64: struct.Struct("<d"),
}
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")


class GGUFError(InvalidInput, ValueError):
    """Not a GGUF file, or a damaged one; the message names the file and what is wrong."""


@dataclass(frozen=True)
class LargeArray:
    """An array too long to keep (e.g. a vocabulary): its length and item type only."""

    length: int
    item_type: int

    def __len__(self) -> int:
        return self.length


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # ggml order: shape[0] is the innermost (contiguous) dimension
    ggml_type: int
    offset: int  # from the start of its file's data section
    nbytes: int
    shard: int = 0  # which file of a split GGUF holds it

    @property
    def type_name(self) -> str:
        try:
            return GGMLQuantizationType(self.ggml_type).name
        except ValueError:
            return f"type{self.ggml_type}"

    @property
    def elements(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count


@dataclass
class GGUFHeader:
    source: str
    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    data_offset: int  # where the tensor data starts (= bytes of header, padded)
    alignment: int = DEFAULT_ALIGNMENT
    shards: list[str] = field(default_factory=list)

    @property
    def architecture(self) -> str:
        value = self.metadata.get("general.architecture")
        return str(value) if value is not None else ""

    def arch_value(self, suffix: str, default: Any = None) -> Any:
        """``<architecture>.<suffix>``, e.g. ``arch_value("block_count")``."""
        return self.metadata.get(f"{self.architecture}.{suffix}", default)

    @property
    def weights_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)


def tensor_nbytes(ggml_type: int, shape: tuple[int, ...], name: str = "") -> int:
    try:
        block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        raise GGUFError(f"tensor {name!r} has an unknown ggml type {ggml_type}") from None
    elements = 1
    for dim in shape:
        elements *= dim
    if shape and shape[0] % block_size:
        raise GGUFError(f"tensor {name!r}: first dimension {shape[0]} is not a multiple of the block size {block_size}")
    return elements // block_size * type_size


class _Reader:
    """Sequential reads over a ByteSource, fetching chunks as the parser needs them."""

    def __init__(self, source: ByteSource) -> None:
        self.source = source
        self.buffer = b""
        self.base = 0  # file offset of buffer[0]
        self.pos = 0  # file offset of the next byte to parse
        self.what = "the header"

    def _ensure(self, size: int) -> memoryview:
        start = self.pos - self.base
        if start < 0 or start + size > len(self.buffer):
            kept = self.buffer[start:] if 0 <= start < len(self.buffer) else b""
            more = self.source.read(self.pos + len(kept), max(CHUNK, size - len(kept)))
            self.buffer = kept + more
            self.base = self.pos
            start = 0
            if len(self.buffer) < size:
                raise GGUFError(
                    f"{self.source.name}: truncated GGUF header: the file ends at byte {self.pos + len(self.buffer)} "
                    f"while reading {self.what}"
                )
        return memoryview(self.buffer)[start : start + size]

    def unpack(self, fmt: struct.Struct) -> Any:
        value = fmt.unpack_from(self._ensure(fmt.size))[0]
        self.pos += fmt.size
        return value

    def string(self) -> str:
        length = self.unpack(U64)
        if length > 1 << 30:
            raise GGUFError(f"{self.source.name}: damaged GGUF header: a string of {length} bytes in {self.what}")
        raw = bytes(self._ensure(length))
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def skip_strings(self, count: int) -> None:
        for _ in range(count):
            length = self.unpack(U64)
            self._ensure(length)
            self.pos += length


def _value(reader: _Reader, value_type: int) -> Any:
    if value_type == GGUFValueType.STRING:
        return reader.string()
    if value_type == GGUFValueType.ARRAY:
        item_type = reader.unpack(U32)
        length = reader.unpack(U64)
        if length > KEEP_ARRAY_ITEMS:
            if item_type == GGUFValueType.STRING:
                reader.skip_strings(length)
            elif item_type in SCALARS:
                size = SCALARS[item_type].size * length
                reader._ensure(size)
                reader.pos += size
            else:
                for _ in range(length):
                    _value(reader, item_type)
            return LargeArray(length, item_type)
        return [_value(reader, item_type) for _ in range(length)]
    scalar = SCALARS.get(value_type)
    if scalar is None:
        raise GGUFError(f"{reader.source.name}: damaged GGUF header: unknown value type {value_type} in {reader.what}")
    return reader.unpack(scalar)


def read_header(source: ByteSource) -> GGUFHeader:
    reader = _Reader(source)
    magic = source.read(0, 4)
    if magic != MAGIC:
        raise GGUFError(f"{source.name} is not a GGUF file (it starts with {magic[:4]!r}, not b'GGUF')")
    reader.pos = 4
    version = reader.unpack(U32)
    if version not in (2, 3):
        raise GGUFError(f"{source.name}: GGUF version {version} is not supported (2 and 3 are)")
    n_tensors = reader.unpack(U64)
    n_kv = reader.unpack(U64)
    if n_tensors > 1 << 24 or n_kv > 1 << 24:
        raise GGUFError(f"{source.name}: damaged GGUF header ({n_tensors} tensors, {n_kv} keys)")
    metadata: dict[str, Any] = {}
    for index in range(n_kv):
        reader.what = f"metadata entry {index + 1} of {n_kv}"
        key = reader.string()
        reader.what = f"metadata {key!r}"
        metadata[key] = _value(reader, reader.unpack(U32))
    tensors: list[TensorInfo] = []
    raw: list[tuple[str, tuple[int, ...], int, int]] = []
    for index in range(n_tensors):
        reader.what = f"tensor info {index + 1} of {n_tensors}"
        name = reader.string()
        n_dims = reader.unpack(U32)
        if n_dims > 8:
            raise GGUFError(f"{source.name}: damaged GGUF header: tensor {name!r} has {n_dims} dimensions")
        shape = tuple(reader.unpack(U64) for _ in range(n_dims))
        ggml_type = reader.unpack(U32)
        offset = reader.unpack(U64)
        raw.append((name, shape, ggml_type, offset))
    alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT) or DEFAULT_ALIGNMENT)
    data_offset = -(-reader.pos // alignment) * alignment
    for name, shape, ggml_type, offset in raw:
        tensors.append(TensorInfo(name, shape, ggml_type, offset, tensor_nbytes(ggml_type, shape, name)))
    return GGUFHeader(
        source=source.name,
        version=version,
        metadata=metadata,
        tensors=tensors,
        data_offset=data_offset,
        alignment=alignment,
        shards=[source.name],
    )


def shard_locations(location: str) -> list[str]:
    """All shards of a split GGUF (``name-00001-of-00003.gguf``), or just ``location``."""
    base = location.rsplit("/", 1)
    filename = base[-1]
    match = SPLIT_NAME.match(filename)
    if match is None:
        return [location]
    count = int(match.group("count"))
    directory = base[0] + "/" if len(base) == 2 else ""
    return [f"{directory}{match.group('prefix')}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]


def read_model(location: str | Path) -> GGUFHeader:
    """The model's header; for a split GGUF, the first shard's metadata with every shard's tensors.

    ``location``: a path, an http(s) URL, or ``hf://``, ``ms://``, ``ollama://`` (see ``remote``).
    """
    locations = shard_locations(resolve(str(location)))
    headers: list[GGUFHeader] = []
    for shard in locations:
        prefix = f"split GGUF, shard {shard}: " if len(locations) > 1 else ""
        try:
            source = open_source(shard)
        except SourceError as exc:
            raise GGUFError(f"{prefix}{exc}") from exc
        try:
            headers.append(read_header(source))
        except SourceError as exc:
            raise GGUFError(f"{prefix}{exc}") from exc
        finally:
            source.close()
    first = headers[0]
    declared = int(first.metadata.get("split.count", len(headers)) or len(headers))
    if declared != len(headers):
        raise GGUFError(f"{first.source} says it is split in {declared} files, but {len(headers)} were found")
    if len(headers) > 1:
        first.tensors = [replace(t, shard=index) for index, header in enumerate(headers) for t in header.tensors]
        first.shards = [h.source for h in headers]
    return first
