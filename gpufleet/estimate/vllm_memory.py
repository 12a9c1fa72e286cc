"""How much memory vLLM needs per GPU for a safetensors model, and what it claims.

The claim rule (``vllm/v1/worker/gpu_worker.py``): at start vLLM takes ``requested =
gpu_memory_utilization × total`` of every GPU it uses and refuses to start when the GPU's free
memory is below that ("Free memory on device … is less than desired GPU memory utilization"). Then
``determine_available_memory`` profiles one forward pass of ``max_num_batched_tokens`` tokens and
gives the KV cache ``requested − (weights + activation peak + non-torch memory)``;
``check_enough_kv_cache_memory`` (``vllm/v1/core/kv_cache_utils.py``) fails unless that holds ONE
sequence of ``max_model_len`` tokens. So, per GPU:

    claim = gpu_memory_utilization × device_total
    need  = weights + activation + overhead + kv(one max_model_len sequence)
    fits ⇔ need ≤ claim          (and the scheduler must see free ≥ claim)

Per GPU of pipeline stage ``s`` (all ``tp`` GPUs of a stage hold the same amounts):

- weights: tensors of the stage's layers (``get_pp_indices``: ``L // pp`` each, the remainder to
  the stages before the last), the embedding on the first stage, final norm and ``lm_head`` on the
  last (a tied ``lm_head`` is a second copy there when pp > 1), everything else on the first; each
  tensor ÷ tp, except 1-D tensors (replicated) and k/v projections when tp > kv heads (each GPU holds
  one whole kv head: bytes ÷ kv_heads).
- kv: ``2 × Σ_layers tokens × kv_heads_per_gpu × head_dim × kv_bytes`` with ``kv_heads_per_gpu =
  max(1, kv_heads // tp)`` and tokens = ``max_model_len`` rounded up to the block size (16) — a
  sliding-window layer keeps ``min(window − 1 + max_num_batched_tokens, max_model_len)`` tokens + 1
  block (``SlidingWindowSpec.max_memory_usage_bytes``).
- activation (T = max_num_batched_tokens, b = dtype bytes): ``T × b × (2·hidden + max(attn, mlp))``
  with attn = q + 2·kv + q widths per GPU and mlp = 3·intermediate / tp (gate_up output, then the
  activated product), the residual stream being the ``2·hidden``. The last stage adds the sampler
  warm-up: ``min(max_num_seqs, T) × vocab × (b + 20)`` (logits, their float32 copy, probabilities and
  the top-p sort's values and int64 indices).
- dtype (``--dtype``): floating tensors are loaded in the serving dtype (``auto``: the config's,
  float32 checkpoints in bfloat16), so their bytes are elements × its size whatever the file stores;
  quantized tensors (integers, fp8) keep their stored bytes. KV (``--kv-cache-dtype auto``) and
  activations use the serving dtype too.
- ``--cpu-offload-gb`` G: each GPU keeps its stage's weights less G GiB (never below 0), which vLLM
  holds in host RAM instead (``cpu_offload_bytes`` per GPU, for the host's claim).
- overhead: ``NON_TORCH`` (cuBLAS workspaces, allocator slack), ``COLLECTIVES`` when more than one GPU
  takes part (NCCL and custom all-reduce buffers), ``CUDA_GRAPHS`` unless ``enforce_eager``. These
  three are published orders of magnitude, NOT measured here (no GPU); calibrate them on a CUDA
  machine against vLLM's "Model loading took …" and "Available KV cache memory" log lines.
  ``benchmarks/vllm_accuracy.py`` checks the rest on the CPU build: the KV bytes per token (vLLM's
  "CPU KV cache size: N tokens" matched exactly) and the CPU estimate against peak RSS.

``max_model_len``: when not given, the model's (``HfConfig.derived_max_len``) capped at
``DEFAULT_CTX_CAP`` (8192, the same cap as llama.cpp deployments) — vLLM's own default is the model's
full length, so whoever launches vLLM must pass ``--max-model-len`` with the value estimated here.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Any

from gpufleet.common.errors import InvalidInput
from gpufleet.common.units import GiB, MiB
from gpufleet.estimate.config import DEFAULT_CTX_CAP
from gpufleet.estimate.hf_config import DTYPE_ALIASES, DTYPE_BYTES, HfConfig
from gpufleet.estimate.safetensors_header import TensorInfo, WeightsSummary

KV_CACHE_DTYPES = {"fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "bfloat16": 2, "float16": 2}
NON_TORCH = 512 * MiB
COLLECTIVES = 512 * MiB
CUDA_GRAPHS = 512 * MiB
SAMPLER_EXTRA_BYTES = 20  # per logit beyond the model-dtype logits: f32 copy, probs, sort values + i64 indices
BLOCK_SIZE = 16
LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks)\.(\d+)\.")
NOT_TEXT = ("vision", "visual", "image", "audio", "mm_projector", "multi_modal")
EMBEDDING = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight")
LM_HEAD = ("lm_head.weight", "embed_out.weight")
FLOATING = frozenset({"F64", "F32", "F16", "BF16"})  # safetensors dtypes vLLM casts to the serving dtype


def serving_dtype(config: HfConfig, dtype: str) -> str:
    """What ``--dtype`` means for this model: float16, bfloat16 or float32."""
    if dtype == "auto":
        return config.serving_dtype
    return DTYPE_ALIASES.get(dtype, dtype)


class VllmEstimateError(InvalidInput, ValueError):
    """The run settings cannot work with this model (e.g. TP does not divide the heads)."""

    code = "invalid_vllm_settings"


@dataclass(frozen=True)
class VllmSettings:
    """vLLM's memory-relevant flags. ``None`` batch limits mean vLLM's default for the device (``batch_defaults``)."""

    max_model_len: int | None = None
    kv_cache_dtype: str = "auto"
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    enforce_eager: bool = False
    dtype: str = "auto"
    cpu_offload_bytes: int = 0  # per GPU (``--cpu-offload-gb`` in bytes)

    def __post_init__(self) -> None:
        if self.dtype != "auto" and DTYPE_ALIASES.get(self.dtype, self.dtype) not in DTYPE_BYTES:
            raise VllmEstimateError(f"dtype {self.dtype!r} is not auto or one of {', '.join(DTYPE_BYTES)}")
        if self.cpu_offload_bytes < 0:
            raise VllmEstimateError(f"cpu_offload_gb must not be negative, not {self.cpu_offload_bytes / GiB:g}")
        if self.kv_cache_dtype != "auto" and self.kv_cache_dtype not in KV_CACHE_DTYPES:
            raise VllmEstimateError(
                f"kv_cache_dtype {self.kv_cache_dtype!r} is not auto or one of {', '.join(KV_CACHE_DTYPES)}"
            )
        if not 0 < self.gpu_memory_utilization <= 1:
            raise VllmEstimateError(f"gpu_memory_utilization must be in (0, 1], not {self.gpu_memory_utilization}")
        for name in (
            "tensor_parallel_size",
            "pipeline_parallel_size",
            "max_model_len",
            "max_num_seqs",
            "max_num_batched_tokens",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise VllmEstimateError(f"{name} must be at least 1, not {value}")


def batch_defaults(
    device_total: int, device_name: str = "", *, cpu: bool = False, world_size: int = 1
) -> tuple[int, int]:
    """vLLM's default (max_num_batched_tokens, max_num_seqs) for ``vllm serve`` (``EngineArgs.get_batch_defaults``):
    GPUs of ≥ 70 GiB other than A100 get (8192, 1024), other GPUs (2048, 256), CPUs (2048, 128) × world size."""
    if cpu:
        return 2048 * world_size, 128 * world_size
    if device_total >= 70 * GiB and "a100" not in device_name.lower():
        return 8192, 1024
    return 2048, 256


def pp_layer_ranges(layers: int, pp: int) -> list[range]:
    """vLLM's ``get_pp_indices``: ``layers // pp`` each, the remainder one each to the stages before the last."""
    if pp > layers:
        raise VllmEstimateError(f"pipeline_parallel_size {pp} is more than the model's {layers} layers")
    counts = [layers // pp] * pp
    for i in range(2, layers % pp + 2):
        counts[-i] += 1
    starts = [sum(counts[:i]) for i in range(pp)]
    return [range(s, s + c) for s, c in zip(starts, counts, strict=True)]


def valid_tensor_parallel_sizes(config: HfConfig, up_to: int = 64) -> list[int]:
    """TP sizes vLLM accepts for the model: attention heads divisible by TP (``verify_with_parallel_config``);
    kv heads divisible by TP or TP by kv heads (``QKVParallelLinear`` replicates kv heads when TP exceeds them);
    intermediate size divisible by TP (``MergedColumnParallelLinear`` splits it evenly)."""
    kv = config.num_key_value_heads
    return [
        tp
        for tp in range(1, up_to + 1)
        if config.num_attention_heads % tp == 0
        and (kv % tp == 0 or tp % kv == 0)
        and config.intermediate_size % tp == 0
    ]


@dataclass(frozen=True)
class StageUsage:
    """Bytes on EACH of the ``tp`` GPUs of one pipeline stage."""

    stage: int
    layers: int
    weights: int
    kv_cache: int  # one sequence of max_model_len tokens
    activation: int
    overhead: int

    @property
    def need(self) -> int:
        return self.weights + self.kv_cache + self.activation + self.overhead


@dataclass(frozen=True)
class VllmEstimate:
    max_model_len: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    gpu_memory_utilization: float
    max_num_batched_tokens: int
    max_num_seqs: int
    kv_bytes_per_token: list[int]  # per stage, per GPU
    stages: list[StageUsage]
    warnings: list[str]

    def claim(self, device_total: int) -> int:
        """What vLLM takes of each GPU it uses: the utilization fraction of the device's total."""
        return int(self.gpu_memory_utilization * device_total)

    def fits(self, device_total: int) -> bool:
        return all(stage.need <= self.claim(device_total) for stage in self.stages)

    def max_cached_tokens(self, device_total: int) -> int:
        """Tokens the KV cache holds once the rest is allocated (vLLM's "GPU KV cache size"), the smallest stage's."""
        room = [
            (self.claim(device_total) - (s.need - s.kv_cache)) // per_token
            for s, per_token in zip(self.stages, self.kv_bytes_per_token, strict=True)
            if per_token
        ]
        return max(0, min(room)) if room else 0

    def as_json(self, device_total: int | None = None) -> dict[str, Any]:
        result: dict[str, Any] = {
            "max_model_len": self.max_model_len,
            "tensor_parallel_size": self.tensor_parallel_size,
            "pipeline_parallel_size": self.pipeline_parallel_size,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "max_num_batched_tokens": self.max_num_batched_tokens,
            "max_num_seqs": self.max_num_seqs,
            "stages": [asdict(s) | {"need": s.need} for s in self.stages],
            "warnings": self.warnings,
        }
        if device_total is not None:
            result |= {
                "claim": self.claim(device_total),
                "fits": self.fits(device_total),
                "max_cached_tokens": self.max_cached_tokens(device_total),
            }
        return result


class VllmEstimator:
    """Estimates for one model; ``estimate(settings, device_total)`` is cheap enough to call per candidate TP."""

    def __init__(self, config: HfConfig, weights: WeightsSummary) -> None:
        self.config = config
        self.weights = weights
        self._placed = [(self._home(t), t) for t in weights.tensors]

    def _home(self, tensor: TensorInfo) -> str | int:
        """A layer index, or "first" / "last" for the tensors outside the repeating blocks."""
        name = tensor.name
        match = LAYER.search(name)
        if match and not any(marker in name for marker in NOT_TEXT):
            return int(match.group(1))
        if name.endswith(LM_HEAD) or ("norm" in name and not any(marker in name for marker in NOT_TEXT)):
            return "last"
        return "first"

    def _per_gpu(self, tensor: TensorInfo, tp: int, element_bytes: int) -> int:
        """Bytes of ``tensor`` on one GPU: as loaded (``element_bytes`` per element when floating),
        split tp ways (see the module's docstring)."""
        nbytes = tensor.elements * element_bytes if tensor.dtype in FLOATING else tensor.nbytes
        if len(tensor.shape) <= 1:
            return nbytes
        kv = self.config.num_key_value_heads
        if tp > kv and re.search(r"\.(k_proj|v_proj)\.", tensor.name):
            return -(-nbytes // kv)
        return -(-nbytes // tp)

    def max_model_len(self, settings: VllmSettings) -> tuple[int, list[str]]:
        derived = self.config.derived_max_len
        if settings.max_model_len is None:
            if derived is None:
                raise VllmEstimateError("config.json names no context length: give max_model_len")
            return min(derived, DEFAULT_CTX_CAP), []
        if derived is not None and settings.max_model_len > derived:
            # vLLM refuses this unless VLLM_ALLOW_LONG_MAX_MODEL_LEN=1.
            return settings.max_model_len, [
                f"max_model_len {settings.max_model_len} is more than the model's {derived}"
            ]
        return settings.max_model_len, []

    def estimate(self, settings: VllmSettings, device_total: int = 0, device_name: str = "") -> VllmEstimate:
        config = self.config
        tp, pp = settings.tensor_parallel_size, settings.pipeline_parallel_size
        if tp not in valid_tensor_parallel_sizes(config, tp):
            raise VllmEstimateError(
                f"tensor_parallel_size {tp} does not divide the model's {config.num_attention_heads} attention heads, "
                f"{config.num_key_value_heads} kv heads and {config.intermediate_size} intermediate size; "
                f"valid: {', '.join(map(str, valid_tensor_parallel_sizes(config)))}"
            )
        max_len, warnings = self.max_model_len(settings)
        tokens_default, seqs_default = batch_defaults(device_total, device_name)
        batched = settings.max_num_batched_tokens or tokens_default
        seqs = min(settings.max_num_seqs or seqs_default, batched)
        element = DTYPE_BYTES[serving_dtype(config, settings.dtype)]
        kv_bytes = element if settings.kv_cache_dtype == "auto" else KV_CACHE_DTYPES[settings.kv_cache_dtype]
        kv_heads = max(1, config.num_key_value_heads // tp)
        per_layer_token = 2 * kv_heads * config.head_dim * kv_bytes
        full_tokens = _blocks(max_len) * BLOCK_SIZE
        ranges = pp_layer_ranges(config.num_hidden_layers, pp)
        overhead = NON_TORCH + (COLLECTIVES if tp * pp > 1 else 0) + (0 if settings.enforce_eager else CUDA_GRAPHS)
        stages, per_token = [], []
        for index, layers in enumerate(ranges):
            first, last = index == 0, index == pp - 1
            weights = sum(
                self._per_gpu(t, tp, element)
                for home, t in self._placed
                if (home in layers) or (home == "first" and first) or (home == "last" and last)
            )
            if last and pp > 1 and config.tie_word_embeddings:
                weights += sum(self._per_gpu(t, tp, element) for home, t in self._placed if t.name.endswith(EMBEDDING))
            weights = max(0, weights - settings.cpu_offload_bytes)
            kv = 0
            for layer in layers:
                cached = full_tokens
                if config.is_sliding(layer) and config.sliding_window is not None:
                    window = min(config.sliding_window - 1 + batched, max_len)
                    cached = (_blocks(window) + 1) * BLOCK_SIZE
                kv += min(cached, full_tokens) * per_layer_token
            activation = self._activation(batched, seqs, tp, last, element)
            stages.append(StageUsage(index, len(layers), weights, kv, activation, overhead))
            per_token.append(per_layer_token * len(layers))
        return VllmEstimate(
            max_model_len=max_len,
            tensor_parallel_size=tp,
            pipeline_parallel_size=pp,
            gpu_memory_utilization=settings.gpu_memory_utilization,
            max_num_batched_tokens=batched,
            max_num_seqs=seqs,
            kv_bytes_per_token=per_token,
            stages=stages,
            warnings=warnings,
        )

    def _activation(self, tokens: int, seqs: int, tp: int, last: bool, b: int) -> int:
        config = self.config
        q = config.num_attention_heads * config.head_dim // tp
        kv = max(1, config.num_key_value_heads // tp) * config.head_dim
        attention = q + 2 * kv + q
        mlp = 3 * config.intermediate_size // tp
        forward = tokens * b * (2 * config.hidden_size + max(attention, mlp))
        sampler = seqs * config.vocab_size * (b + SAMPLER_EXTRA_BYTES) if last else 0
        return forward + sampler


def _blocks(tokens: int) -> int:
    return -(-tokens // BLOCK_SIZE)


def smallest_fitting_tp(
    estimator: VllmEstimator,
    device_total: int,
    available_gpus: int,
    settings: VllmSettings | None = None,
    device_name: str = "",
) -> int | None:
    """The smallest valid TP ≤ ``available_gpus`` whose every GPU's need fits its claim; None if none does."""
    base = settings or VllmSettings()
    for tp in valid_tensor_parallel_sizes(estimator.config, available_gpus):
        estimate = estimator.estimate(replace(base, tensor_parallel_size=tp), device_total, device_name)
        if estimate.fits(device_total):
            return tp
    return None
