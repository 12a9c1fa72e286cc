"""``gpufleet estimate``: the JSON contract, the table, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import pytest

from testkit.synthetic import preset, scaled, write_model
from tests.support.processes import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shape = scaled(preset("llama-3.1-8b"), n_layer=4, n_embd=256, n_ff=512, n_head=8, n_head_kv=2, n_vocab=4096)
    return write_model(tmp_path_factory.mktemp("m") / "small.gguf", shape, "f16")


def test_json_contract(model: Path) -> None:
    result = run_cli(["estimate", str(model), "--ctx-size", "4096", "--tensor-split", "3,1", "--rpc", "1", "--json"])
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["architecture"] == "llama" and data["context_size"] == 4096 and data["layers"] == 5
    assert isinstance(data["ram"], int) and len(data["vram"]) == 2 and all(isinstance(v, int) for v in data["vram"])
    assert [row["name"] for row in data["breakdown"]] == ["host", "rpc0", "gpu0"]
    for row in data["breakdown"]:
        assert set(row) >= {"weights", "kv_cache", "compute", "overhead", "total"}
        assert row["total"] == row["weights"] + row["kv_cache"] + row["compute"] + row["overhead"]
    assert data["ram"] == data["breakdown"][0]["total"]


def test_cpu_only_and_table(model: Path) -> None:
    cpu = json.loads(run_cli(["estimate", str(model), "--gpu-layers", "0", "--json"]).stdout)
    assert cpu["offloaded_layers"] == 0 and cpu["vram"] == [0]
    table = run_cli(["estimate", str(model), "-c", "2048"])
    assert table.returncode == 0 and "host" in table.stdout and "KV cache" in table.stdout


def test_bad_input_is_one_clear_line(model: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    result = run_cli(["estimate", str(text)])
    assert result.returncode == 1 and "is not a GGUF file" in result.stderr and "Traceback" not in result.stderr
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(model.read_bytes()[:1000])
    result = run_cli(["estimate", str(truncated)])
    assert result.returncode == 1 and "truncated GGUF header" in result.stderr
    result = run_cli(["estimate", str(model), "--tensor-split", "1,x"])
    assert result.returncode == 2 and "not a comma-separated list of numbers" in result.stderr
    result = run_cli(["estimate", str(model), "--cache-type", "q3"])
    assert result.returncode == 2 and "cache type 'q3'" in result.stderr


def test_absurd_context_is_capped_and_said(model: Path) -> None:
    result = run_cli(["estimate", str(model), "--ctx-size", "100000000", "--json"])
    data = json.loads(result.stdout)
    assert data["context_size"] == 131072
    assert any("capped at 131072" in warning for warning in data["warnings"])


def test_unknown_architecture_falls_back_with_a_warning(tmp_path: Path) -> None:
    # A llama-shaped file that calls itself "futurenet": estimated as a generic decoder.
    source = gguf.GGUFReader(write_model(tmp_path / "l.gguf", preset("llama-tiny"), "f16"))
    writer = gguf.GGUFWriter(str(tmp_path / "future.gguf"), "futurenet")
    for field in source.fields.values():
        if field.name.startswith("llama."):
            name = "futurenet." + field.name.removeprefix("llama.")
            writer.add_key_value(
                name,
                field.contents(),
                field.types[0],
                field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None,
            )
    for tensor in source.tensors:
        writer.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    result = run_cli(["estimate", str(tmp_path / "future.gguf")])
    assert result.returncode == 0
    assert "architecture 'futurenet' is not one gpufleet has checked" in result.stderr
