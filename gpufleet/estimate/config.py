"""What an estimate is for: the llama.cpp settings that change memory use, and the placement."""

from __future__ import annotations

from dataclasses import dataclass, field

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
DEFAULT_CTX_CAP = 8192  # when no context size is asked for: the model's own, but at most this


def cache_type_id(name: str) -> int:
    if name not in CACHE_TYPES:
        raise ValueError(f"cache type {name!r} is not one of {', '.join(CACHE_TYPES)}")
    return int(GGMLQuantizationType[name.upper()])


def row_bytes(ggml_type: int, elements: int) -> int:
    """``ggml_row_size``: bytes of one row of ``elements`` values of a (possibly quantized) type."""
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    return elements // block * size


@dataclass(frozen=True)
class RunConfig:
    """llama-server's memory-relevant settings. Defaults are llama-server's own (parallel 4 with a
    unified KV cache is what its ``--parallel auto`` picks)."""

    ctx_size: int | None = None  # None: the model's trained context, capped at DEFAULT_CTX_CAP
    parallel: int = 4
    kv_unified: bool = True
    batch: int = 2048
    ubatch: int = 512
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    flash_attn: bool = True  # llama.cpp's "auto" turns it on wherever the device supports it
    mmap: bool = True
    swa_full: bool = False
    cpu_repack: bool = True  # the CPU backend re-packs some quantized weights (x86 AVX2+, ARM NEON)
    cpu_arch: str = "amd64"  # the host's CPU architecture (amd64 | arm64): which types it re-packs

    def __post_init__(self) -> None:
        cache_type_id(self.cache_type_k)
        cache_type_id(self.cache_type_v)
        for name in ("parallel", "batch", "ubatch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.ctx_size is not None and self.ctx_size < 1:
            raise ValueError("ctx_size must be at least 1")


@dataclass(frozen=True)
class Placement:
    """Where the layers go. Devices are ordered as llama.cpp orders them: RPC servers first, then local GPUs.

    ``gpu_layers`` counts offloadable layers (repeating blocks + the output layer); None = all.
    ``tensor_split`` gives each device's share of the offloaded layers (None = equal shares here;
    llama.cpp would split by free memory).
    """

    gpus: int = 1
    rpc: int = 0
    gpu_layers: int | None = None
    tensor_split: tuple[float, ...] | None = None
    unified_memory: bool = False  # Apple Silicon: the GPU's memory is the host's
    rpc_on_cpu: bool = False  # the RPC servers serve a CPU (not a GPU): CPU scratch and overheads apply
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def devices(self) -> int:
        return self.rpc + self.gpus

    def __post_init__(self) -> None:
        if self.gpus < 0 or self.rpc < 0:
            raise ValueError("device counts cannot be negative")
        if self.gpu_layers is not None and self.gpu_layers < 0:
            raise ValueError("gpu_layers cannot be negative")
        if self.tensor_split is not None:
            if len(self.tensor_split) != self.devices:
                raise ValueError(f"tensor split has {len(self.tensor_split)} entries for {self.devices} device(s)")
            if any(x < 0 for x in self.tensor_split) or not any(self.tensor_split):
                raise ValueError("tensor split entries must be ≥ 0 and not all 0")
