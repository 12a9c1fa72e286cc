"""The estimator's arithmetic, table-driven, on synthetic GGUF files of real architectures.

Each expected value is worked out in the comment beside it, from the model shape and the
llama.cpp rules the estimator implements (see ``gpufleet/estimate/memory.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpufleet.common.units import MiB
from gpufleet.estimate.config import Placement, RunConfig
from gpufleet.estimate.gguf import read_model
from gpufleet.estimate.memory import HOST, Estimator
from gpufleet.estimate.model_info import ModelInfo, model_info
from testkit.synthetic import preset, scaled, write_model


def info_of(tmp_path: Path, name: str, weight_type: str = "f16", **changes: int) -> ModelInfo:
    shape = scaled(preset(name), **changes) if changes else preset(name)
    path = write_model(tmp_path / f"{name}.gguf", shape, weight_type, sparse=True)  # type: ignore[arg-type]
    return model_info(read_model(path))


@pytest.fixture(scope="module")
def llama8b(tmp_path_factory: pytest.TempPathFactory) -> ModelInfo:
    return info_of(tmp_path_factory.mktemp("m"), "llama-3.1-8b")


@pytest.mark.parametrize(
    ("gpu_layers", "split", "expected"),
    [
        # 32 blocks + output = 33 offloadable; all on one device.
        (None, (1.0,), [0] * 33),
        # ngl 0: nothing offloaded.
        (0, (1.0,), [HOST] * 33),
        # ngl 10: i_gpu_start = 33 - 10 = 23 → blocks 0..22 on the host, 23..31 and the output offloaded.
        (10, (1.0,), [HOST] * 23 + [0] * 10),
        # split 1:1 over 33 layers: position il/33 < 0.5 → device 0 for il 0..16 (16/33 = .485), device 1 after.
        (None, (1.0, 1.0), [0] * 17 + [1] * 16),
        # split 3:1: cumulative [.75, 1]; il/33 < .75 for il ≤ 24 (24/33 = .727, 25/33 = .758).
        (None, (3.0, 1.0), [0] * 25 + [1] * 8),
    ],
)
def test_layers_are_assigned_like_llama_cpp(
    llama8b: ModelInfo, gpu_layers: int | None, split: tuple[float, ...], expected: list[int]
) -> None:
    estimator = Estimator(llama8b, RunConfig(ctx_size=4096))
    placement = Placement(gpus=len(split), gpu_layers=gpu_layers, tensor_split=split)
    assert estimator.layer_devices(placement).tolist() == expected


def test_kv_cache_of_llama_8b(llama8b: ModelInfo) -> None:
    # 32 layers × 8 KV heads × 128 dims = 1024 values for K and for V per layer and cell;
    # f16 → 2 bytes: 32 × 2 × 1024 × 2 = 128 KiB per cell; 8192 cells → 1 GiB.
    estimate = Estimator(llama8b, RunConfig(ctx_size=8192)).estimate(Placement(gpus=1))
    assert estimate.devices[0].kv_cache == 8192 * 128 * 1024
    # q8_0: 34 bytes per 32 values → 1024 values = 1088 bytes; ×2 (K, V) × 32 layers × 8192 cells.
    quantized = Estimator(llama8b, RunConfig(ctx_size=8192, cache_type_k="q8_0", cache_type_v="q8_0"))
    assert quantized.estimate(Placement(gpus=1)).devices[0].kv_cache == 8192 * 32 * 2 * 1088


def test_weights_add_up_and_follow_the_layers(llama8b: ModelInfo) -> None:
    config = RunConfig(ctx_size=4096, mmap=False)
    full = Estimator(llama8b, config).estimate(Placement(gpus=2, tensor_split=(1, 1)))
    # Input embeddings stay on the host; everything else is split over the two GPUs.
    assert full.host.weights == llama8b.input_bytes
    assert full.host.weights + sum(d.weights for d in full.devices) == llama8b.weights_bytes
    cpu = Estimator(llama8b, config).estimate(Placement(gpus=1, gpu_layers=0))
    assert cpu.host.weights == llama8b.weights_bytes and cpu.devices[0].total == 0
    assert cpu.offloaded_layers == 0 and full.offloaded_layers == full.layers == 33


def test_tied_output_is_loaded_twice_when_offloaded(tmp_path: Path) -> None:
    info = info_of(tmp_path, "qwen3-0.6b")
    assert info.tied_output
    config = RunConfig(ctx_size=4096, mmap=False)
    gpu = Estimator(info, config).estimate(Placement(gpus=1))
    # The GPU gets the blocks, the output norm and a copy of the token embeddings for the output layer.
    assert gpu.devices[0].weights == sum(info.layer_bytes) + info.output_bytes + info.token_embd_bytes
    cpu = Estimator(info, config).estimate(Placement(gpus=1, gpu_layers=0))
    assert cpu.host.weights == info.weights_bytes  # f16: same CPU buffer, not duplicated


def test_sliding_window_layers_keep_a_small_cache(tmp_path: Path) -> None:
    info = info_of(tmp_path, "gemma3-1b")
    # 26 layers, pattern 6: layers with il % 6 == 5 use full attention → 5, 11, 17, 23: 4 full, 22 SWA.
    assert sum(not swa for swa in info.swa_layers) == 4
    estimator = Estimator(info, RunConfig(ctx_size=32768, parallel=1))
    # SWA cells: pad(min(32768, 512 × 1 + 512 ubatch), 256) = 1024.
    # Per layer and cell: 1 KV head × 256 dims × 2 (K, V) × 2 bytes = 1 KiB.
    expected = (4 * 32768 + 22 * 1024) * 1024
    assert estimator.estimate(Placement(gpus=1)).devices[0].kv_cache == expected


def test_encoders_have_no_kv_cache(tmp_path: Path) -> None:
    info = info_of(tmp_path, "nomic-embed-text-v1.5")
    estimate = Estimator(info, RunConfig(ctx_size=2048)).estimate(Placement(gpus=1))
    assert info.kind == "embedding" and estimate.devices[0].kv_cache == 0
    reranker = info_of(tmp_path, "bge-reranker-v2-m3")
    assert reranker.kind == "reranker"


def test_context_defaults_and_caps(llama8b: ModelInfo) -> None:
    default = Estimator(llama8b, RunConfig())
    assert default.n_ctx == 8192  # trained on 131072: capped at 8192 when nothing is asked for
    huge = Estimator(llama8b, RunConfig(ctx_size=10_000_000))
    assert huge.n_ctx == 131072
    assert any("capped at 131072" in w for w in huge.estimate().warnings)
    # Not unified: 10000 cells / 4 slots = 2500 → padded to 2560 per slot → 10240 in all.
    assert Estimator(llama8b, RunConfig(ctx_size=10000, parallel=4, kv_unified=False)).n_ctx == 10240


def test_unified_memory_is_one_pool(llama8b: ModelInfo) -> None:
    estimator = Estimator(llama8b, RunConfig(ctx_size=4096))
    separate = estimator.estimate(Placement(gpus=1))
    apple = estimator.estimate(Placement(gpus=1, unified_memory=True))
    assert apple.ram == separate.ram + separate.devices[0].total - separate.devices[0].overhead


def test_pipeline_parallelism_copies_device_inputs(llama8b: ModelInfo) -> None:
    estimator = Estimator(llama8b, RunConfig(ctx_size=4096))
    two = estimator.estimate(Placement(gpus=2, tensor_split=(1, 1)))
    partial = estimator.estimate(Placement(gpus=2, tensor_split=(1, 1), gpu_layers=30))
    # Fully offloaded over 2 devices: 4 copies of each device's inputs (mask: 4096 × 512 × 2 bytes = 4 MiB
    # alone) → far more scratch than the same split with a layer left on the host (1 copy).
    assert two.devices[0].compute - partial.devices[0].compute >= 3 * 4 * MiB


@settings(max_examples=60, deadline=None)
@given(gpus=st.integers(1, 8), ngl=st.integers(0, 40), shares=st.lists(st.integers(1, 9), min_size=8, max_size=8))
def test_no_bytes_are_lost_or_invented(llama8b: ModelInfo, gpus: int, ngl: int, shares: list[int]) -> None:
    estimator = Estimator(llama8b, RunConfig(ctx_size=2048, mmap=False))
    placement = Placement(gpus=gpus, gpu_layers=ngl, tensor_split=tuple(float(s) for s in shares[:gpus]))
    estimate = estimator.estimate(placement)
    devices = [estimate.host, *estimate.devices]
    assert sum(d.weights for d in devices) == llama8b.weights_bytes
    assert sum(d.kv_cache for d in devices) == 2048 * 128 * 1024
    assert all(d.total >= 0 for d in devices)
    assert estimate.offloaded_layers == min(ngl, 33)
    assert estimator.estimate(placement) == estimate  # deterministic


def test_estimators_are_memoised_per_file_and_settings(tmp_path: Path) -> None:
    from gpufleet.estimate.loader import load_estimator

    path = write_model(tmp_path / "m.gguf", preset("llama-tiny"), "f16")
    first = load_estimator(str(path), RunConfig(ctx_size=1024))
    assert load_estimator(str(path), RunConfig(ctx_size=1024)) is first
    assert load_estimator(str(path), RunConfig(ctx_size=2048)) is not first
    write_model(path, scaled(preset("llama-tiny"), n_layer=3), "f16")  # replaced: read again
    assert load_estimator(str(path), RunConfig(ctx_size=1024)).info.n_layer == 3
