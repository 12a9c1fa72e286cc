"""The memory-relevant part of a Hugging Face ``config.json``, as vLLM reads it.

Multimodal configs (Llava, Gemma 3, Qwen2-VL, Mistral 3 …) keep the language model's fields in a
nested ``text_config``; its values win over the top level, except the architecture and, when the
text config lacks them, dtype and ``tie_word_embeddings``. Defaults are the ones transformers and
vLLM apply: ``num_key_value_heads`` = ``num_attention_heads`` (no GQA), ``head_dim`` =
``hidden_size / num_attention_heads``. A field an estimate cannot do without is a ``HfConfigError``
naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpufleet.common.errors import InvalidInput
from gpufleet.estimate.hf_files import ModelFiles

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
# Aliases vLLM and transformers accept in ``torch_dtype``/``dtype``.
DTYPE_ALIASES = {"half": "float16", "fp16": "float16", "bf16": "bfloat16", "float": "float32", "fp32": "float32"}
# Where vLLM looks for the trained context length, in its order (``_get_and_verify_max_len``).
MAX_LEN_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
# rope_scaling types whose factor vLLM does not multiply into the max length (the context is already
# the scaled one, or the type does not extend it).
UNSCALED_ROPE = frozenset({"su", "longrope", "llama3", "default", "mrope", "linear"})


class HfConfigError(InvalidInput, ValueError):
    """``config.json`` lacks or mis-types a field the estimate needs; the message names it."""

    code = "invalid_model_config"


@dataclass(frozen=True)
class HfConfig:
    architecture: str
    model_type: str
    num_hidden_layers: int
    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    dtype: str  # float32 | float16 | bfloat16, as written in the config (float32 when absent)
    max_position_embeddings: int | None
    sliding_window: int | None = None
    layer_types: tuple[str, ...] | None = None  # per layer "full_attention" | "sliding_attention"
    rope_scaling: dict[str, Any] | None = None
    tie_word_embeddings: bool = False

    @property
    def serving_dtype(self) -> str:
        """The dtype vLLM runs with ``--dtype auto``: the config's, but float32 checkpoints in bfloat16."""
        return "bfloat16" if self.dtype == "float32" else self.dtype

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.serving_dtype]

    @property
    def derived_max_len(self) -> int | None:
        """vLLM's default ``max_model_len``: the trained length, times the rope-scaling factor where it extends it."""
        if self.max_position_embeddings is None:
            return None
        rope = self.rope_scaling or {}
        kind = str(rope.get("rope_type", rope.get("type", "default")))
        factor = rope.get("factor")
        if kind in UNSCALED_ROPE or not isinstance(factor, int | float):
            return self.max_position_embeddings
        original = rope.get("original_max_position_embeddings")
        base = original if isinstance(original, int) and kind == "yarn" else self.max_position_embeddings
        return int(base * factor)

    def is_sliding(self, layer: int) -> bool:
        """Whether a layer attends only to the last ``sliding_window`` tokens (so caches only those)."""
        if self.sliding_window is None:
            return False
        if self.layer_types is not None:
            return self.layer_types[layer] == "sliding_attention"
        # Without layer_types only Mistral-style models slide on every layer; others (Gemma 2, Qwen 2
        # with use_sliding_window false) are counted as full attention, which over-estimates.
        return self.model_type == "mistral"


def parse_config(data: dict[str, Any], name: str = "config.json") -> HfConfig:
    text = data.get("text_config")
    fields = dict(data)
    if isinstance(text, dict):
        fields.update(text)
    architectures = data.get("architectures") or fields.get("architectures") or []
    if not isinstance(architectures, list) or not architectures:
        raise HfConfigError(f"{name}: no 'architectures' list (not a Hugging Face model config?)")

    def integer(key: str, default: int | None = None) -> int:
        value = fields.get(key, default)
        if value is None:
            raise HfConfigError(f"{name}: missing {key!r}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise HfConfigError(f"{name}: {key!r} must be a positive integer, not {value!r}")
        return value

    hidden = integer("hidden_size")
    heads = integer("num_attention_heads")
    kv_heads = integer("num_key_value_heads", heads)
    if heads % kv_heads:
        raise HfConfigError(f"{name}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}")
    head_dim = fields.get("head_dim")
    if head_dim is None:
        if hidden % heads:
            raise HfConfigError(f"{name}: hidden_size {hidden} is not divisible by num_attention_heads {heads}")
        head_dim = hidden // heads
    dtype = _dtype(fields.get("torch_dtype") or fields.get("dtype") or data.get("torch_dtype") or "float32", name)
    max_len = next((fields[k] for k in MAX_LEN_KEYS if isinstance(fields.get(k), int)), None)
    window = fields.get("sliding_window")
    if fields.get("use_sliding_window") is False or not isinstance(window, int) or window <= 0:
        window = None
    layers = integer("num_hidden_layers")
    layer_types = fields.get("layer_types")
    if layer_types is not None and (not isinstance(layer_types, list) or len(layer_types) != layers):
        raise HfConfigError(f"{name}: layer_types must list one type per layer ({layers})")
    rope = fields.get("rope_scaling")
    tie = fields.get("tie_word_embeddings", data.get("tie_word_embeddings", False))
    return HfConfig(
        architecture=str(architectures[0]),
        model_type=str(fields.get("model_type", "")),
        num_hidden_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=integer("head_dim", head_dim),
        intermediate_size=integer("intermediate_size", 4 * hidden),
        vocab_size=integer("vocab_size"),
        dtype=dtype,
        max_position_embeddings=max_len,
        sliding_window=window,
        layer_types=tuple(str(t) for t in layer_types) if layer_types is not None else None,
        rope_scaling=rope if isinstance(rope, dict) else None,
        tie_word_embeddings=bool(tie),
    )


def _dtype(value: Any, name: str) -> str:
    text = str(value).removeprefix("torch.")
    text = DTYPE_ALIASES.get(text, text)
    if text not in DTYPE_BYTES:
        raise HfConfigError(f"{name}: unsupported dtype {value!r} (expected one of {', '.join(DTYPE_BYTES)})")
    return text


def read_config(location: str | Path) -> HfConfig:
    """``config.json`` of the model directory at ``location`` (local path, ``hf://``, ``ms://``, URL)."""
    files = ModelFiles(location)
    data = files.read_json("config.json")
    if data is None:  # required=True raises instead; kept for the type checker
        raise HfConfigError(f"{files.name}: no config.json")
    return parse_config(data, f"{files.name}/config.json")
