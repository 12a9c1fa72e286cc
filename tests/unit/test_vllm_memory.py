"""The vLLM estimate by the numbers (formulas in ``gpufleet/estimate/vllm_memory.py``).

Reference model: Llama-3-8B shapes (32 layers, hidden 4096, intermediate 14336, 32 heads, 8 kv heads,
head_dim 128, vocab 128256, bf16), as a tensor table without a file. Its weights:
  embed = lm_head = 128256 × 4096 × 2 = 1 050 673 152 B
  one layer: q,o 2 × 4096² × 2 = 67 108 864; k,v 2 × 1024 × 4096 × 2 = 16 777 216;
             gate,up,down 3 × 14336 × 4096 × 2 = 352 321 536; 2 norms 2 × 4096 × 2 = 16 384 → 436 224 000
  total = 2 × 1 050 673 152 + 32 × 436 224 000 + 8 192 (final norm) = 16 060 522 496 B (14.96 GiB)
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gpufleet.common.units import GiB, MiB
from gpufleet.engines.llama_cpp_flags import BackendParameterError
from gpufleet.engines.vllm import vllm_settings
from gpufleet.estimate.hf_config import HfConfig, parse_config, read_config
from gpufleet.estimate.safetensors_header import TensorInfo, WeightsSummary, read_weights
from gpufleet.estimate.vllm_cpu_memory import CPU_PROCESS_OVERHEAD, cpu_estimate, kvcache_space
from gpufleet.estimate.vllm_memory import (
    VllmEstimateError,
    VllmEstimator,
    VllmSettings,
    pp_layer_ranges,
    smallest_fitting_tp,
    valid_tensor_parallel_sizes,
)
from testkit.hf_model import TinyLlama, write_tiny_llama

LLAMA3 = TinyLlama(
    layers=32, hidden=4096, intermediate=14336, heads=32, kv_heads=8, vocab=128256, max_position_embeddings=8192
)
WEIGHTS = 16_060_522_496
LAYER = 436_224_000
EMBED = 1_050_673_152


def summary(model: TinyLlama) -> WeightsSummary:
    tensors = tuple(TensorInfo(n, "BF16", s, math.prod(s) * 2) for n, s in model.tensor_shapes().items())
    return WeightsSummary(tensors, ("model.safetensors",))


def llama3() -> VllmEstimator:
    return VllmEstimator(parse_config(LLAMA3.config()), summary(LLAMA3))


def test_weights_total() -> None:
    assert summary(LLAMA3).total_bytes == 2 * EMBED + 32 * LAYER + 8192 == WEIGHTS


def test_tp1_one_gpu_breakdown() -> None:
    stage = llama3().estimate(VllmSettings(max_model_len=8192)).stages[0]
    assert stage.weights == WEIGHTS
    assert (
        stage.kv_cache == 2 * 32 * 8 * 128 * 2 * 8192 == GiB
    )  # 2 (K,V) × layers × kv heads × head_dim × bf16 × tokens
    # T = 2048 tokens (device below 70 GiB: vLLM's 2048/256 defaults), b = 2:
    #   attn = 4096 + 2·1024 + 4096 = 10 240 < mlp = 3 × 14336 = 43 008
    #   forward = 2048 × 2 × (2·4096 + 43 008) = 209 715 200
    #   sampler = 256 seqs × 128256 × (2 + 20) = 722 337 792
    assert stage.activation == 209_715_200 + 722_337_792
    assert stage.overhead == 512 * MiB + 512 * MiB  # non-torch + CUDA graphs (one GPU: no collectives)
    assert stage.need == WEIGHTS + GiB + 932_052_992 + GiB == 19_140_059_136  # 17.8 GiB


@pytest.mark.parametrize(
    ("device_gib", "fits"),
    [(24, True), (16, False)],  # claim 0.9 × 24 GiB = 21.6 GiB ≥ 17.8 GiB; 0.9 × 16 GiB = 14.4 GiB < 17.8 GiB
)
def test_claim_is_the_utilization_fraction_of_the_device(device_gib: int, fits: bool) -> None:
    estimate = llama3().estimate(VllmSettings(max_model_len=8192), device_gib * GiB)
    assert estimate.claim(device_gib * GiB) == int(0.9 * device_gib * GiB)
    assert estimate.fits(device_gib * GiB) is fits


def test_kv_capacity_left_in_the_claim() -> None:
    # 24 GiB: claim 23 192 823 398 − (19 140 059 136 − 1 GiB) = 5 126 506 086 B; per token 2·32·8·128·2 = 131 072 B
    estimate = llama3().estimate(VllmSettings(max_model_len=8192), 24 * GiB)
    assert estimate.max_cached_tokens(24 * GiB) == (int(0.9 * 24 * GiB) - (19_140_059_136 - GiB)) // 131_072 == 39_112


def test_tp2_splits_matrices_and_replicates_norms() -> None:
    stage = llama3().estimate(VllmSettings(max_model_len=8192, tensor_parallel_size=2)).stages[0]
    # matrices halve, the 2 layer norms (16 384 B) and the final norm (8 192 B) stay whole on each GPU
    assert stage.weights == EMBED + 32 * ((LAYER - 16_384) // 2 + 16_384) + 8192 == 8_030_527_488
    assert stage.kv_cache == GiB // 2  # 4 kv heads per GPU
    # attn = 2048 + 2·512 + 2048 = 5 120 < mlp = 21 504; forward = 2048 × 2 × (8192 + 21 504) = 121 634 816
    assert stage.activation == 121_634_816 + 722_337_792
    assert stage.overhead == 3 * 512 * MiB  # + collectives


def test_tp_beyond_kv_heads_replicates_them() -> None:
    # TP 16 > 8 kv heads: each GPU holds 1 kv head (2 GPUs per head): KV = 1 GiB / 8; k,v proj = full / 8 each
    stage = llama3().estimate(VllmSettings(max_model_len=8192, tensor_parallel_size=16)).stages[0]
    assert stage.kv_cache == GiB // 8
    per_layer = 2 * 4096 * 4096 * 2 // 16 + 2 * 1024 * 4096 * 2 // 8 + 3 * 14336 * 4096 * 2 // 16 + 16_384
    assert stage.weights == 2 * EMBED // 16 + 32 * per_layer + 8192


def test_pipeline_stages_follow_vllm_partition() -> None:
    assert [len(r) for r in pp_layer_ranges(61, 4)] == [15, 15, 16, 15]  # remainder to the stages before the last
    assert [len(r) for r in pp_layer_ranges(32, 2)] == [16, 16]
    first, last = llama3().estimate(VllmSettings(max_model_len=8192, pipeline_parallel_size=2)).stages
    assert first.weights == EMBED + 16 * LAYER
    assert last.weights == EMBED + 16 * LAYER + 8192  # lm_head and the final norm
    assert first.kv_cache == last.kv_cache == GiB // 2
    assert first.activation == 209_715_200  # the sampler runs on the last stage only
    with pytest.raises(VllmEstimateError, match="more than the model's 32 layers"):
        pp_layer_ranges(32, 33)


def test_tied_embeddings_are_a_second_copy_on_the_last_stage() -> None:
    tied = TinyLlama(tie_word_embeddings=True)
    estimator = VllmEstimator(parse_config(tied.config()), summary(tied))
    one = estimator.estimate(VllmSettings()).stages[0]
    first, last = estimator.estimate(VllmSettings(pipeline_parallel_size=2)).stages
    assert one.weights == summary(tied).total_bytes  # one stage: shared, counted once
    # first: 1 layer + embed; last: 1 layer + the lm_head copy of embed (same size) + final norm (64 × 2 B)
    assert last.weights - first.weights == 64 * 2


def test_valid_tensor_parallel_sizes() -> None:
    assert valid_tensor_parallel_sizes(parse_config(LLAMA3.config()), 8) == [1, 2, 4, 8]
    # Qwen2.5-0.5B-like: 14 heads, 2 kv heads, intermediate 4864 → 7 fails the kv rule, 14 the intermediate
    qwen = parse_config(TinyLlama(heads=14, kv_heads=2, hidden=896, intermediate=4864).config())
    assert valid_tensor_parallel_sizes(qwen, 16) == [1, 2]
    with pytest.raises(VllmEstimateError, match="tensor_parallel_size 3 does not divide"):
        llama3().estimate(VllmSettings(tensor_parallel_size=3))


def test_smallest_fitting_tp() -> None:
    # 16 GiB GPUs: TP 1 needs 17.8 GiB > 14.4 GiB claim; TP 2 needs 8 030 527 488 + 0.5 GiB + 843 972 608 + 1.5 GiB
    #   = 11 021 983 744 B (10.3 GiB) ≤ 14.4 GiB
    assert smallest_fitting_tp(llama3(), 16 * GiB, 4, VllmSettings(max_model_len=8192)) == 2
    assert smallest_fitting_tp(llama3(), 16 * GiB, 1, VllmSettings(max_model_len=8192)) is None
    assert smallest_fitting_tp(llama3(), 80 * GiB, 8) == 1


def test_max_model_len_default_cap_and_fp8_kv() -> None:
    long = TinyLlama(
        layers=32, hidden=4096, intermediate=14336, heads=32, kv_heads=8, vocab=128256, max_position_embeddings=131072
    )
    estimator = VllmEstimator(parse_config(long.config()), summary(long))
    estimate = estimator.estimate(VllmSettings(kv_cache_dtype="fp8"))
    assert estimate.max_model_len == 8192  # min(131072, DEFAULT_CTX_CAP)
    assert estimate.stages[0].kv_cache == GiB // 2  # fp8: 1 byte
    # 100 tokens round up to 7 blocks of 16 = 112 tokens × 131 072 B
    assert estimator.estimate(VllmSettings(max_model_len=100)).stages[0].kv_cache == 112 * 131_072
    assert estimator.estimate(VllmSettings(max_model_len=200_000)).warnings


def test_sliding_window_layers_cache_the_window_only() -> None:
    config = parse_config(LLAMA3.config() | {"model_type": "mistral", "sliding_window": 4096})
    estimate = VllmEstimator(config, summary(LLAMA3)).estimate(VllmSettings(max_model_len=8192))
    # min(4096 − 1 + 2048, 8192) = 6143 → 384 blocks + 1 = 385 × 16 = 6160 tokens per layer
    assert estimate.stages[0].kv_cache == 6160 * 131_072


@pytest.mark.parametrize(
    "settings",
    [
        {"gpu_memory_utilization": 1.5},
        {"kv_cache_dtype": "int4"},
        {"tensor_parallel_size": 0},
        {"dtype": "int4"},
        {"cpu_offload_bytes": -1},
    ],
)
def test_bad_settings_are_clear_errors(settings: dict[str, object]) -> None:
    with pytest.raises(VllmEstimateError):
        VllmSettings(**settings)  # type: ignore[arg-type]


def test_cpu_estimate_of_a_written_model(tmp_path: Path) -> None:
    directory = write_tiny_llama(tmp_path / "m")
    config: HfConfig = read_config(directory)
    estimator = VllmEstimator(config, read_weights(directory))
    estimate = cpu_estimate(estimator, kvcache_space(4, 64 * GiB))
    # tiny: 2 layers × 2 kv heads × head_dim 16 × 2 (K,V) × 2 B × 2048 tokens = 524 288 B
    assert estimate.kv_one_sequence == 2 * 2 * 2 * 16 * 2 * 2048 and estimate.starts
    assert estimate.ram == 2 * 115_008 + 4 * GiB + estimate.activation + CPU_PROCESS_OVERHEAD
    # unset: half of one NUMA node's memory
    assert kvcache_space(None, 64 * GiB, numa_nodes=2) == 16 * GiB


def float32_llama3() -> VllmEstimator:
    """The same model saved in float32 (``torch_dtype: float32``, F32 tensors: twice the file bytes)."""
    tensors = tuple(TensorInfo(n, "F32", s, math.prod(s) * 4) for n, s in LLAMA3.tensor_shapes().items())
    config = parse_config(LLAMA3.config() | {"torch_dtype": "float32"})
    return VllmEstimator(config, WeightsSummary(tensors, ("model.safetensors",)))


@pytest.mark.parametrize(
    ("dtype", "weights", "kv"),
    [
        ("auto", WEIGHTS, GiB),  # float32 checkpoints are served in bfloat16: 2 bytes per weight, as bf16
        ("float32", 2 * WEIGHTS, 2 * GiB),  # --dtype float32: 4 bytes per weight and per cached value
        ("half", WEIGHTS, GiB),  # an alias vLLM takes for float16
    ],
)
def test_weights_and_kv_are_in_the_serving_dtype(dtype: str, weights: int, kv: int) -> None:
    stage = float32_llama3().estimate(VllmSettings(max_model_len=8192, dtype=dtype)).stages[0]
    assert (stage.weights, stage.kv_cache) == (weights, kv)


def test_quantized_tensors_keep_their_stored_bytes() -> None:
    # an int8 copy of the matrices (1 byte per element), norms kept in BF16: only the BF16 ones follow --dtype
    tensors = tuple(
        TensorInfo(n, "I8" if len(s) > 1 else "BF16", s, math.prod(s) * (1 if len(s) > 1 else 2))
        for n, s in LLAMA3.tensor_shapes().items()
    )
    estimator = VllmEstimator(parse_config(LLAMA3.config()), WeightsSummary(tensors, ("model.safetensors",)))
    norms = 2 * 32 * 4096 + 4096  # elements of the 65 norm vectors
    as_bf16 = estimator.estimate(VllmSettings(max_model_len=8192)).stages[0].weights
    as_f32 = estimator.estimate(VllmSettings(max_model_len=8192, dtype="float32")).stages[0].weights
    assert as_f32 - as_bf16 == norms * 2  # 2 more bytes per norm element, none more per int8 weight


def test_cpu_offload_moves_weights_off_each_gpu() -> None:
    # --cpu-offload-gb 4 at TP2: each GPU holds its half of the weights less 4 GiB
    base = llama3().estimate(VllmSettings(max_model_len=8192, tensor_parallel_size=2)).stages[0]
    offload = VllmSettings(max_model_len=8192, tensor_parallel_size=2, cpu_offload_bytes=4 * GiB)
    stage = llama3().estimate(offload).stages[0]
    assert stage.weights == base.weights - 4 * GiB and stage.kv_cache == base.kv_cache
    everything = llama3().estimate(VllmSettings(max_model_len=8192, cpu_offload_bytes=64 * GiB)).stages[0]
    assert everything.weights == 0  # never below nothing
    assert cpu_estimate(llama3(), 4 * GiB, offload).weights == WEIGHTS  # on a CPU it is all in RAM anyway


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        (["--dtype", "float32", "--cpu-offload-gb", "1.5"], ("float32", 3 * GiB // 2)),
        ([], ("auto", 0)),
    ],
)
def test_the_deployments_flags_reach_the_estimate(parameters: list[str], expected: tuple[str, int]) -> None:
    settings = vllm_settings(None, parameters)
    assert (settings.dtype, settings.cpu_offload_bytes) == expected


@pytest.mark.parametrize("value", ["lots", "-1"])
def test_a_bad_offload_amount_names_the_flag(value: str) -> None:
    with pytest.raises(BackendParameterError, match="--cpu-offload-gb"):
        vllm_settings(None, ["--cpu-offload-gb", value])
