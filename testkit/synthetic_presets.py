"""Model shapes for synthetic GGUF files: the hyperparameters of real, published models.

Capacity planning and tests need files whose tensor table matches what a real model
would make llama.cpp allocate, without downloading hundreds of gigabytes. A
``ModelShape`` is exactly the part of a Hugging Face ``config.json`` that decides
the GGUF tensor table; ``PRESETS`` holds the shapes of models people actually run
(numbers from each model's published ``config.json``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

ARCHES = ("llama", "qwen2", "qwen3", "qwen3moe", "gemma2", "gemma3", "phi3", "bert", "nomic-bert")
VARIANTS = (None, "mistral", "mixtral", "xlm-roberta")

# Hyperparameters a config.json has but ModelShape leaves out: the published values per arch.
ROPE_BASE = {
    "llama": 500000.0,
    "qwen2": 1e6,
    "qwen3": 1e6,
    "qwen3moe": 1e6,
    "gemma2": 10000.0,
    "gemma3": 1e6,
    "phi3": 10000.0,
    "nomic-bert": 1000.0,
}
NORM_EPS = {
    "llama": 1e-5,
    "qwen2": 1e-6,
    "qwen3": 1e-6,
    "qwen3moe": 1e-6,
    "gemma2": 1e-6,
    "gemma3": 1e-6,
    "phi3": 1e-5,
    "bert": 1e-12,
    "nomic-bert": 1e-12,
}


@dataclass(frozen=True)
class ModelShape:
    """The hyperparameters that fix a model's GGUF tensor table (and so its memory use).

    ``arch`` is llama.cpp's ``general.architecture``. Mixtral is the ``llama`` arch with
    ``n_expert`` > 0. ``variant`` only changes details llama.cpp keys on besides the arch:
    ``"xlm-roberta"`` is a ``bert`` with a 250 002-token unigram vocabulary, one token type
    and a rank-pooling classifier head (``cls``/``cls.output``), i.e. a cross-encoder reranker.
    """

    arch: str
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    n_vocab: int
    n_ctx_train: int
    head_dim: int | None = None
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_exp: int | None = None
    sliding_window: int | None = None
    tied_embeddings: bool = False
    variant: str | None = None

    @property
    def n_embd_head(self) -> int:
        """Width of one attention head (``head_dim``, else ``n_embd // n_head`` as llama.cpp defaults)."""
        return self.head_dim if self.head_dim is not None else self.n_embd // self.n_head

    @property
    def expert_ff(self) -> int:
        """Width of one expert's FFN: ``n_ff_exp`` where the config has it (Qwen MoE), else ``n_ff`` (Mixtral)."""
        return self.n_ff_exp if self.n_ff_exp is not None else self.n_ff

    @property
    def is_encoder(self) -> bool:
        """BERT-family models: no KV cache, no generation; served for embeddings or reranking."""
        return self.arch in ("bert", "nomic-bert")


def check_shape(shape: ModelShape) -> None:
    """Raise ``ValueError`` naming every problem llama.cpp would refuse the shape for, before anything is written."""
    problems: list[str] = []
    if shape.arch not in ARCHES:
        problems.append(f"arch {shape.arch!r} is not one of {', '.join(ARCHES)}")
    if shape.variant not in VARIANTS:
        problems.append(f"variant {shape.variant!r} is not one of {VARIANTS}")
    if min(shape.n_layer, shape.n_embd, shape.n_ff, shape.n_head, shape.n_head_kv, shape.n_ctx_train) <= 0:
        problems.append("n_layer, n_embd, n_ff, n_head, n_head_kv and n_ctx_train must be positive")
    elif shape.n_head % shape.n_head_kv:
        problems.append(f"n_head {shape.n_head} is not a multiple of n_head_kv {shape.n_head_kv}")
    elif shape.head_dim is None and shape.n_embd % shape.n_head:
        problems.append(f"n_embd {shape.n_embd} is not a multiple of n_head {shape.n_head}; give head_dim")
    elif shape.arch in ("qwen2", "phi3", "bert", "nomic-bert") and shape.n_embd_head * shape.n_head != shape.n_embd:
        problems.append(f"{shape.arch} needs head_dim * n_head == n_embd")
    if shape.arch == "qwen3moe" and not (shape.n_expert and shape.n_expert_used):
        problems.append("qwen3moe needs n_expert and n_expert_used")
    if shape.n_expert and shape.arch not in ("llama", "qwen3moe"):
        problems.append(f"experts are only supported for llama (mixtral) and qwen3moe, not {shape.arch}")
    if not 0 <= shape.n_expert_used <= shape.n_expert or (shape.n_expert and not shape.n_expert_used):
        problems.append(f"n_expert_used {shape.n_expert_used} must be in 1..n_expert {shape.n_expert}")
    if problems:
        raise ValueError("invalid model shape: " + "; ".join(problems))


def scaled(shape: ModelShape, **changes: Any) -> ModelShape:
    """``shape`` with some fields replaced: a small model of a real architecture for fast tests.

    Only the dimensions change; the arch, variant and the tensors llama.cpp expects stay.
    """
    return dataclasses.replace(shape, **changes)


_QWEN_VOCAB = 151936

PRESETS: dict[str, ModelShape] = {
    # 2 layers of 64: a complete llama model in a few hundred kB, loadable in milliseconds.
    "llama-tiny": ModelShape("llama", 2, 64, 128, 4, 2, 512, 2048),
    "llama-3.1-8b": ModelShape("llama", 32, 4096, 14336, 32, 8, 128256, 131072),
    "llama-3.1-70b": ModelShape("llama", 80, 8192, 28672, 64, 8, 128256, 131072),
    "llama-3.1-405b": ModelShape("llama", 126, 16384, 53248, 128, 8, 128256, 131072),
    # Mistral-7B-v0.3 (32768-token vocabulary).
    "mistral-7b": ModelShape("llama", 32, 4096, 14336, 32, 8, 32768, 32768, variant="mistral"),
    "mixtral-8x7b": ModelShape(
        "llama", 32, 4096, 14336, 32, 8, 32000, 32768, n_expert=8, n_expert_used=2, variant="mixtral"
    ),
    "qwen2.5-0.5b": ModelShape("qwen2", 24, 896, 4864, 14, 2, _QWEN_VOCAB, 32768, tied_embeddings=True),
    "qwen2.5-7b": ModelShape("qwen2", 28, 3584, 18944, 28, 4, 152064, 32768),
    "qwen3-0.6b": ModelShape("qwen3", 28, 1024, 3072, 16, 8, _QWEN_VOCAB, 40960, head_dim=128, tied_embeddings=True),
    "qwen3-8b": ModelShape("qwen3", 36, 4096, 12288, 32, 8, _QWEN_VOCAB, 40960, head_dim=128),
    "qwen3-30b-a3b": ModelShape(
        "qwen3moe", 48, 2048, 6144, 32, 4, _QWEN_VOCAB, 40960, head_dim=128, n_expert=128, n_expert_used=8, n_ff_exp=768
    ),
    "gemma2-2b": ModelShape(
        "gemma2", 26, 2304, 9216, 8, 4, 256000, 8192, head_dim=256, sliding_window=4096, tied_embeddings=True
    ),
    "gemma3-1b": ModelShape(
        "gemma3", 26, 1152, 6912, 4, 1, 262144, 32768, head_dim=256, sliding_window=512, tied_embeddings=True
    ),
    # The text model of gemma-3-4b (the vision tower lives in a separate mmproj file).
    "gemma3-4b": ModelShape(
        "gemma3", 34, 2560, 10240, 8, 4, 262208, 131072, head_dim=256, sliding_window=1024, tied_embeddings=True
    ),
    # Phi-3-mini-4k-instruct.
    "phi3-mini": ModelShape("phi3", 32, 3072, 8192, 32, 32, 32064, 4096),
    # bge-base-en-v1.5 / bert-base-uncased.
    "bert-base": ModelShape("bert", 12, 768, 3072, 12, 12, 30522, 512),
    "nomic-embed-text-v1.5": ModelShape("nomic-bert", 12, 768, 3072, 12, 12, 30522, 2048),
    # XLM-RoBERTa-large cross-encoder; 8194 positions less the 2 RoBERTa padding offsets.
    "bge-reranker-v2-m3": ModelShape("bert", 24, 1024, 4096, 16, 16, 250002, 8192, variant="xlm-roberta"),
}


def preset(name: str) -> ModelShape:
    """The named shape from ``PRESETS``; an unknown name raises ``KeyError`` listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown model preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None
