"""The streaming GGUF header reader: agrees with the gguf package, reads only the header, fails clearly."""

from __future__ import annotations

import shutil
from pathlib import Path

import gguf
import numpy as np
import pytest

from gpufleet.estimate.gguf import GGUFError, LargeArray, read_model, shard_locations
from gpufleet.estimate.model_info import ModelInfoError, model_info
from tests.support.http_files import hf_file_server
from tests.support.tiny_gguf import write_tiny_llama


def test_header_matches_the_gguf_package(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "m.gguf", extra_tokens=5000)
    header = read_model(path)
    reference = gguf.GGUFReader(path)
    assert [t.name for t in header.tensors] == [t.name for t in reference.tensors]
    for ours, theirs in zip(header.tensors, reference.tensors, strict=True):
        assert ours.shape == tuple(int(d) for d in theirs.shape)
        assert ours.nbytes == int(theirs.n_bytes)
        assert header.data_offset + ours.offset == int(theirs.data_offset)
    assert header.metadata["llama.block_count"] == 2
    tokens = header.metadata["tokenizer.ggml.tokens"]
    assert isinstance(tokens, LargeArray) and len(tokens) == 5300  # counted, not kept
    assert model_info(header).n_vocab == 5300


def test_not_gguf_truncated_and_missing_metadata(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(GGUFError, match="is not a GGUF file"):
        read_model(text)
    whole = write_tiny_llama(tmp_path / "m.gguf").read_bytes()
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(whole[:200])
    with pytest.raises(GGUFError, match="truncated GGUF header: the file ends at byte 200 while reading metadata"):
        read_model(truncated)
    with pytest.raises(GGUFError, match="cannot open"):
        read_model(tmp_path / "missing.gguf")
    writer = gguf.GGUFWriter(str(tmp_path / "bare.gguf"), "llama")
    writer.add_block_count(2)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    with pytest.raises(ModelInfoError, match=r"llama\.embedding_length is missing"):
        model_info(read_model(tmp_path / "bare.gguf"))


def test_split_names() -> None:
    assert shard_locations("/m/x-00001-of-00003.gguf") == [
        "/m/x-00001-of-00003.gguf",
        "/m/x-00002-of-00003.gguf",
        "/m/x-00003-of-00003.gguf",
    ]
    assert shard_locations("/m/x.gguf") == ["/m/x.gguf"]


def test_split_gguf_reads_every_shard(tmp_path: Path) -> None:
    # gguf-split's layout: split.* metadata in every shard, tensors divided between them.
    whole = read_model(write_tiny_llama(tmp_path / "whole.gguf"))
    names = [t.name for t in whole.tensors]
    halves = [names[: len(names) // 2], names[len(names) // 2 :]]
    reader = gguf.GGUFReader(tmp_path / "whole.gguf")
    for number, subset in enumerate(halves, start=1):
        writer = gguf.GGUFWriter(str(tmp_path / f"s-{number:05d}-of-00002.gguf"), "llama")
        for field_ in reader.fields.values():
            if field_.name.startswith(("llama.", "tokenizer.")):
                writer.add_key_value(
                    field_.name,
                    field_.contents(),
                    field_.types[0],
                    field_.types[-1] if field_.types[0] == gguf.GGUFValueType.ARRAY else None,
                )
        writer.add_uint16("split.no", number - 1)
        writer.add_uint16("split.count", 2)
        writer.add_int32("split.tensors.count", len(names))
        for tensor in reader.tensors:
            if tensor.name in subset:
                writer.add_tensor(tensor.name, tensor.data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    split = read_model(tmp_path / "s-00001-of-00002.gguf")
    assert sorted(t.name for t in split.tensors) == sorted(names)
    assert split.weights_bytes == whole.weights_bytes and len(split.shards) == 2
    (tmp_path / "s-00002-of-00002.gguf").unlink()
    with pytest.raises(GGUFError, match="cannot open"):
        read_model(tmp_path / "s-00001-of-00002.gguf")


def test_remote_header_is_read_with_ranges_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "hub" / "acme" / "tiny-GGUF"
    repo.mkdir(parents=True)
    path = write_tiny_llama(repo / "tiny.gguf", n_embd=256, n_ff=1024, n_layer=8)
    # Pad the file so the weights dwarf the header: a remote read must not fetch them.
    with path.open("ab") as handle:
        handle.truncate(path.stat().st_size + 64 * 1024 * 1024)
    local = read_model(path)
    with hf_file_server(tmp_path / "hub") as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        remote = read_model("hf://acme/tiny-GGUF/tiny.gguf")
        assert [t.nbytes for t in remote.tensors] == [t.nbytes for t in local.tensors]
        assert sum(server.served_bytes) <= 2 * 1024 * 1024
        with pytest.raises(GGUFError, match="HTTP 404"):
            read_model("hf://acme/tiny-GGUF/absent.gguf")
    shutil.rmtree(tmp_path / "hub")


def test_metadata_of_the_wrong_type_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("llama.block_count", "twelve")  # a string where a count belongs
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    writer.add_tensor("token_embd.weight", np.zeros((8, 64), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelInfoError, match="malformed metadata"):
        model_info(read_model(path))
