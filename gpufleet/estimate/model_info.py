"""What the estimator needs to know about a model, read from its GGUF header.

Hyper-parameters come from ``<arch>.*`` metadata the way llama.cpp reads them
(per-layer arrays allowed for head counts and FFN widths); weight bytes come
from the tensor table, grouped the way llama.cpp assigns tensors to devices:

- input: token embeddings, position embeddings, token types — always on the CPU;
- layer i: every ``blk.i.*`` tensor — on the device that holds layer i;
- output: ``output.*``, ``output_norm.*``, classifier heads — on the device of the
  "output layer" (offloaded only when all repeating layers are);
- anything else (``rope_freqs``, ``token_embd_norm``) belongs to layer 0.

A model without ``output.weight`` ties its output to the token embeddings; llama.cpp
then loads the embedding matrix a second time for the output layer unless both
land in the same buffer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType

from gpufleet.common.errors import InvalidInput
from gpufleet.estimate.gguf import GGUFHeader, LargeArray

# Architectures whose graph has no KV cache: encoders (embeddings, rerankers).
ENCODER_ARCHS = frozenset(
    {
        "bert",
        "nomic-bert",
        "nomic-bert-moe",
        "jina-bert-v2",
        "jina-bert-v3",
        "modern-bert",
        "neo-bert",
        "eurobert",
        "gemma-embedding",
    }
)
# Architectures whose estimate is checked against llama.cpp, one row each in
# benchmarks/estimate_accuracy.py (mistral and mixtral are llama files; xlm-roberta is bert).
MEASURED_ARCHS = frozenset({"llama", "qwen2", "qwen3", "qwen3moe", "gemma2", "gemma3", "phi3", "bert", "nomic-bert"})
# Architectures whose layout the estimator understands (same tensor and KV rules as the measured
# ones) but that have no row in the benchmark yet: estimated the same way, with a note saying so.
KNOWN_ARCHS = frozenset(
    {
        *MEASURED_ARCHS,
        "mistral3",
        "qwen2moe",
        "gemma",
        "starcoder2",
        "granite",
        "olmo2",
        "deepseek",
        "internlm2",
        "stablelm",
        "command-r",
        "cohere2",
        *ENCODER_ARCHS,
    }
)
INPUT_TENSORS = re.compile(r"^(token_embd|position_embd|token_types)\.")
OUTPUT_TENSORS = re.compile(r"^(output|output_norm|cls|cls\.output|cls\.norm|dense_2|dense_3|enc\.output_norm)\b")
BLOCK = re.compile(r"^blk\.(\d+)\.")
POOLING_RANK = 4
DEFAULT_SWA_PATTERN = {"gemma2": 2, "gemma3": 6}


@dataclass(frozen=True, eq=False)
class TensorTable:
    """Every tensor's group (-1 input, 0..n_layer-1 its block, n_layer output), file position and type,
    as arrays: the estimator needs mmap spans and re-packing per placement, fast."""

    group: np.ndarray
    shard: np.ndarray
    start: np.ndarray
    end: np.ndarray
    ggml_type: np.ndarray
    rows: np.ndarray  # ne[1]: re-packing needs it to be a multiple of the interleave
    matrix: np.ndarray  # a weight matrix used by a matrix multiplication (2-D or expert 3-D, not an input table)


class ModelKind(StrEnum):
    LLM = "llm"
    EMBEDDING = "embedding"
    RERANKER = "reranker"


class ModelInfoError(InvalidInput, ValueError):
    """The header lacks what an estimate needs; the message names the key."""


@dataclass(frozen=True, eq=False)
class ModelInfo:
    architecture: str
    known: bool
    encoder: bool
    kind: ModelKind
    n_layer: int
    n_embd: int
    n_vocab: int
    n_ctx_train: int
    n_head: tuple[int, ...]  # per layer
    n_head_kv: tuple[int, ...]  # per layer (0 = no attention in that layer)
    head_dim_k: int
    head_dim_v: int
    n_ff: int  # widest dense FFN
    n_expert: int
    n_expert_used: int
    n_ff_exp: int
    n_swa: int
    swa_layers: tuple[bool, ...]
    input_bytes: int
    output_bytes: int
    layer_bytes: tuple[int, ...]
    token_embd_bytes: int
    token_embd_type: int
    tied_output: bool
    ffn_gated: bool  # gate and up projections (SwiGLU/GeGLU) rather than one up projection
    weights_bytes: int
    tensors: TensorTable
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def offloadable_layers(self) -> int:
        """Repeating blocks plus the output layer: what ``--n-gpu-layers`` counts."""
        return self.n_layer + 1

    def n_embd_k_gqa(self, il: int) -> int:
        return self.head_dim_k * self.n_head_kv[il]

    def n_embd_v_gqa(self, il: int) -> int:
        return self.head_dim_v * self.n_head_kv[il]

    @property
    def has_kv_cache(self) -> bool:
        return not self.encoder


def _per_layer(value: Any, n_layer: int, key: str) -> tuple[int, ...]:
    if isinstance(value, list):
        if len(value) != n_layer:
            raise ModelInfoError(f"{key} has {len(value)} entries for {n_layer} layers")
        return tuple(int(v) for v in value)
    return tuple(int(value) for _ in range(n_layer))


def _vocab_size(header: GGUFHeader) -> int:
    tokens = header.metadata.get("tokenizer.ggml.tokens")
    if isinstance(tokens, list | LargeArray):
        return len(tokens)
    size = header.arch_value("vocab_size")
    if size is not None:
        return int(size)
    embd = next((t for t in header.tensors if t.name == "token_embd.weight"), None)
    if embd is not None and len(embd.shape) == 2:
        return int(embd.shape[1])
    raise ModelInfoError(f"{header.source}: cannot tell the vocabulary size (no tokenizer.ggml.tokens)")


def _required(header: GGUFHeader, suffix: str) -> Any:
    value = header.arch_value(suffix)
    if value is None:
        raise ModelInfoError(f"{header.source}: metadata {header.architecture}.{suffix} is missing")
    return value


def _swa_layers(header: GGUFHeader, n_layer: int) -> tuple[int, tuple[bool, ...]]:
    """Which layers use sliding-window attention, as llama.cpp's ``load_swa_pattern`` decides."""
    arch = header.architecture
    n_swa = int(header.arch_value("attention.sliding_window", 0) or 0)
    if n_swa <= 0 or arch == "phi3":  # llama.cpp disables phi3's sliding window
        return 0, tuple(False for _ in range(n_layer))
    pattern = header.arch_value("attention.sliding_window_pattern")
    if isinstance(pattern, list):
        return n_swa, tuple(bool(p) for p in pattern[:n_layer])
    n_pattern = int(pattern) if pattern is not None else DEFAULT_SWA_PATTERN.get(arch, 0)
    if n_pattern == 0 and arch not in DEFAULT_SWA_PATTERN and pattern is None:
        n_pattern = 1  # llama.cpp ignores a window it has no pattern for: no layer slides (1 marks none)
    return n_swa, tuple(n_pattern == 0 or il % n_pattern < n_pattern - 1 for il in range(n_layer))


def model_info(header: GGUFHeader) -> ModelInfo:
    """What the estimator needs from a GGUF header; ``ModelInfoError`` names what is missing or malformed."""
    try:
        return _model_info(header)
    except ModelInfoError:
        raise
    except (TypeError, ValueError, ZeroDivisionError) as exc:  # e.g. a list or a string where a count belongs
        raise ModelInfoError(f"{header.source}: malformed metadata ({type(exc).__name__}: {exc})") from exc


def _model_info(header: GGUFHeader) -> ModelInfo:
    arch = header.architecture
    if not arch:
        raise ModelInfoError(f"{header.source}: metadata general.architecture is missing")
    notes: list[str] = []
    known = arch in KNOWN_ARCHS
    if not known:
        notes.append(
            f"architecture {arch!r} is not one gpufleet has checked against llama.cpp: estimated as a generic decoder"
        )
    elif arch not in MEASURED_ARCHS:
        notes.append(
            f"architecture {arch!r} is estimated like the architectures it resembles, but has not yet been "
            "measured against llama.cpp"
        )
    n_layer = int(_required(header, "block_count"))
    n_embd = int(_required(header, "embedding_length"))
    n_head = _per_layer(_required(header, "attention.head_count"), n_layer, f"{arch}.attention.head_count")
    n_head_kv = _per_layer(
        header.arch_value("attention.head_count_kv", list(n_head)), n_layer, f"{arch}.attention.head_count_kv"
    )
    first_heads = next((h for h in n_head if h), 1)
    head_dim_k = int(header.arch_value("attention.key_length", n_embd // first_heads))
    head_dim_v = int(header.arch_value("attention.value_length", head_dim_k))
    n_ff_raw = header.arch_value("feed_forward_length", 0)
    n_ff = max(n_ff_raw) if isinstance(n_ff_raw, list) else int(n_ff_raw or 0)
    n_expert = int(header.arch_value("expert_count", 0) or 0)
    used = header.arch_value("expert_used_count", 0) or 0
    n_expert_used = max(used) if isinstance(used, list) else int(used)
    n_ff_exp = int(header.arch_value("expert_feed_forward_length", n_ff) or n_ff)
    n_swa, swa_layers = _swa_layers(header, n_layer)
    pooling = int(header.arch_value("pooling_type", 0) or 0)
    encoder = arch in ENCODER_ARCHS
    if encoder or pooling:
        kind = ModelKind.RERANKER if pooling == POOLING_RANK else ModelKind.EMBEDDING
    else:
        kind = ModelKind.LLM

    input_bytes = output_bytes = 0
    layer_bytes = [0] * n_layer
    token_embd = None
    has_output = False
    groups: list[int] = []
    for tensor in header.tensors:
        block = BLOCK.match(tensor.name)
        if block:
            index = int(block.group(1))
            # Next-token-prediction layers beyond block_count are loaded with the output layer.
            group = index if index < n_layer else n_layer
        elif INPUT_TENSORS.match(tensor.name):
            group = -1
            if tensor.name == "token_embd.weight":
                token_embd = tensor
        elif OUTPUT_TENSORS.match(tensor.name):
            group = n_layer
            has_output = has_output or tensor.name == "output.weight"
        else:
            group = 0
        groups.append(group)
        if group == -1:
            input_bytes += tensor.nbytes
        elif group == n_layer:
            output_bytes += tensor.nbytes
        else:
            layer_bytes[group] += tensor.nbytes
    tensors = TensorTable(
        group=np.asarray(groups, dtype=np.int64),
        shard=np.asarray([t.shard for t in header.tensors], dtype=np.int64),
        start=np.asarray([t.offset for t in header.tensors], dtype=np.int64),
        end=np.asarray([t.offset + t.nbytes for t in header.tensors], dtype=np.int64),
        ggml_type=np.asarray([t.ggml_type for t in header.tensors], dtype=np.int64),
        rows=np.asarray([t.shape[1] if len(t.shape) > 1 else 0 for t in header.tensors], dtype=np.int64),
        matrix=np.asarray(
            [len(t.shape) >= 2 and g != -1 for t, g in zip(header.tensors, groups, strict=True)], dtype=bool
        ),
    )
    if token_embd is None:
        raise ModelInfoError(f"{header.source}: no token_embd.weight tensor")
    tied = not has_output and not encoder and kind == ModelKind.LLM
    return ModelInfo(
        architecture=arch,
        known=known,
        encoder=encoder,
        kind=kind,
        n_layer=n_layer,
        n_embd=n_embd,
        n_vocab=_vocab_size(header),
        n_ctx_train=int(header.arch_value("context_length", 0) or 0),
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim_k=head_dim_k,
        head_dim_v=head_dim_v,
        n_ff=n_ff,
        n_expert=n_expert,
        n_expert_used=n_expert_used,
        n_ff_exp=n_ff_exp,
        n_swa=n_swa,
        swa_layers=swa_layers,
        input_bytes=input_bytes,
        output_bytes=output_bytes,
        layer_bytes=tuple(layer_bytes),
        token_embd_bytes=token_embd.nbytes,
        token_embd_type=token_embd.ggml_type,
        tied_output=tied,
        ffn_gated=arch == "phi3" or any(".ffn_gate" in t.name for t in header.tensors),
        weights_bytes=header.weights_bytes,
        tensors=tensors,
        notes=tuple(notes),
    )


def type_name(ggml_type: int) -> str:
    return GGMLQuantizationType(ggml_type).name.lower()
