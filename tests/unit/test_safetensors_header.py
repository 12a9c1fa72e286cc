"""Safetensors headers: local, sharded, remote (header bytes only) and broken files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from gpufleet.estimate.safetensors_header import SafetensorsError, read_file_header, read_weights
from testkit.hf_model import TinyLlama, write_tiny_llama
from tests.support.http_files import hf_file_server

# Default TinyLlama, bf16 (2 bytes): embed 320×64 + lm_head 320×64 = 40 960 params;
# per layer q,o 64×64 ×2 = 8 192, k,v 32×64 ×2 = 4 096, gate,up,down 128×64 ×3 = 24 576, norms 128
#   → 36 992 × 2 layers = 73 984; final norm 64. Total 115 008 params → 230 016 bytes.
PARAMS = 40_960 + 2 * 36_992 + 64


def test_counts_parameters_and_bytes_per_dtype(tmp_path: Path) -> None:
    summary = read_weights(write_tiny_llama(tmp_path / "m"))
    assert summary.parameters == PARAMS
    assert summary.bytes_by_dtype == {"BF16": 2 * PARAMS}
    assert summary.total_bytes == 2 * PARAMS
    assert summary.metadata == {"format": "pt"}
    assert len(summary.tensors) == 3 + 2 * 9


def test_sharded_model_reads_every_shard_named_by_the_index(tmp_path: Path) -> None:
    summary = read_weights(write_tiny_llama(tmp_path / "m", TinyLlama(shards=3, dtype="float16")))
    assert summary.files == tuple(f"model-0000{k}-of-00003.safetensors" for k in (1, 2, 3))
    assert summary.bytes_by_dtype == {"F16": 2 * PARAMS}


def test_remote_reads_only_the_header_bytes(tmp_path: Path) -> None:
    model = write_tiny_llama(tmp_path / "owner" / "tiny", TinyLlama(shards=2))
    file_size = sum(p.stat().st_size for p in model.glob("*.safetensors"))
    with hf_file_server(tmp_path) as server:
        summary = read_weights(f"{server.url}/owner/tiny/resolve/main")
        header_served = sum(server.served_bytes[1:])  # the first request is the index JSON
    assert summary.parameters == PARAMS
    local = read_weights(model)
    headers = sum(8 + read_file_header(model / f).header_bytes for f in local.files)
    assert header_served == headers  # two range requests per shard: 8 bytes, then the JSON
    assert header_served < file_size / 10


def test_hub_scheme_resolves_like_gguf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tiny_llama(tmp_path / "owner" / "tiny")
    with hf_file_server(tmp_path) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        assert read_weights("hf://owner/tiny@main").parameters == PARAMS


def _file(path: Path, header: bytes, length: int | None = None) -> Path:
    path.write_bytes(struct.pack("<Q", len(header) if length is None else length) + header)
    return path


@pytest.mark.parametrize(
    ("header", "length", "message"),
    [
        (b"", 200 * 1024 * 1024, "over the 100 MiB limit"),
        (b"{not json", None, "not valid JSON"),
        (b"[1, 2]", None, "not a JSON object"),
        (b'{"t": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 2]}}', None, "unknown dtype 'Q4'"),
        (b'{"t": {"dtype": "F16", "shape": [4], "data_offsets": [0, 2]}}', None, "needs 8"),
        (b'{"t": {"dtype": "F16", "shape": [1], "data_offsets": [4, 2]}}', None, "invalid data_offsets"),
        (b'{"t": 1}', None, "not an object"),
        (b"{}", 100, "ends inside its header"),
    ],
)
def test_broken_files_are_typed_errors(tmp_path: Path, header: bytes, length: int | None, message: str) -> None:
    _file(tmp_path / "model.safetensors", header, length)
    with pytest.raises(SafetensorsError, match=message):
        read_weights(tmp_path)


def test_short_file_and_missing_weights(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(SafetensorsError, match="shorter than its 8-byte header"):
        read_weights(tmp_path)
    with pytest.raises(SafetensorsError, match=r"cannot open weights file model\.safetensors"):
        read_weights(tmp_path / "empty")
