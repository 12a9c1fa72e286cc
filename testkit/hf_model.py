"""Tiny Hugging Face-format llama models (config.json + safetensors + tokenizer), written by hand.

The safetensors format is ``u64 little-endian header length`` + JSON header + raw bytes, so no
``safetensors``/``torch`` install is needed. Tensor names, shapes and the config are those of
``LlamaForCausalLM`` so vLLM and transformers load the directory (later tests deploy it); weights are
small random values, bf16 or f16. The tokenizer is a byte-level BPE with the 256 byte tokens and no
merges (every byte is a token) plus ChatML markers, written as ``tokenizer.json``.

``SERVABLE`` is the shape vLLM serves on the CPU (its CPU attention takes head sizes of 32..256 in
the steps it supports; the default's 16 is not one): vLLM 0.32 (CPU) loads it, tokenizer and chat
template included, and answers chat completions (``tests/e2e/test_vllm_*.py``).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TinyLlama:
    layers: int = 2
    hidden: int = 64
    intermediate: int = 128
    heads: int = 4
    kv_heads: int = 2
    vocab: int = 320  # ≥ 256 bytes + 3 specials, a multiple of 64
    max_position_embeddings: int = 2048
    dtype: str = "bfloat16"  # bfloat16 | float16
    tie_word_embeddings: bool = False
    shards: int = 1

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        h, i, kv = self.hidden, self.intermediate, self.kv_heads * self.head_dim
        shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (self.vocab, h)}
        for n in range(self.layers):
            p = f"model.layers.{n}."
            shapes |= {
                p + "self_attn.q_proj.weight": (h, h),
                p + "self_attn.k_proj.weight": (kv, h),
                p + "self_attn.v_proj.weight": (kv, h),
                p + "self_attn.o_proj.weight": (h, h),
                p + "mlp.gate_proj.weight": (i, h),
                p + "mlp.up_proj.weight": (i, h),
                p + "mlp.down_proj.weight": (h, i),
                p + "input_layernorm.weight": (h,),
                p + "post_attention_layernorm.weight": (h,),
            }
        shapes["model.norm.weight"] = (h,)
        if not self.tie_word_embeddings:
            shapes["lm_head.weight"] = (self.vocab, h)
        return shapes

    def config(self) -> dict[str, Any]:
        return {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "vocab_size": self.vocab,
            "bos_token_id": 0,
            "eos_token_id": 2,
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": self.dtype,
            "attention_bias": False,
            "mlp_bias": False,
        }


SERVABLE = TinyLlama(hidden=256, intermediate=512, heads=4, kv_heads=2)  # head_dim 64


def tensor_bytes(values: np.ndarray, dtype: str) -> tuple[str, bytes]:
    """(safetensors dtype, little-endian bytes) of float32 values in bf16 or f16."""
    if dtype == "float16":
        return "F16", values.astype("<f2").tobytes()
    bits = values.astype("<f4").view("<u4")
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")  # round to nearest even
    return "BF16", rounded.tobytes()


def write_safetensors(
    path: Path, tensors: dict[str, tuple[str, tuple[int, ...], bytes]], metadata: dict[str, str] | None = None
) -> None:
    """Write ``name → (dtype, shape, data)`` as one safetensors file, header padded to 8 bytes as the library does."""
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(raw)))
        handle.write(raw)
        for _, _, data in tensors.values():
            handle.write(data)


def write_tiny_llama(directory: Path, model: TinyLlama | None = None, seed: int = 0) -> Path:
    """Write the model directory; returns it. Sharded models get ``model.safetensors.index.json``."""
    model = model or TinyLlama()
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tensors: dict[str, tuple[str, tuple[int, ...], bytes]] = {}
    for name, shape in model.tensor_shapes().items():
        values = np.ones(shape, np.float32) if len(shape) == 1 else rng.normal(0, 0.02, shape).astype(np.float32)
        dtype, data = tensor_bytes(values, model.dtype)
        tensors[name] = (dtype, shape, data)
    names = list(tensors)
    if model.shards == 1:
        write_safetensors(directory / "model.safetensors", tensors, {"format": "pt"})
    else:
        weight_map: dict[str, str] = {}
        per = -(-len(names) // model.shards)
        for k in range(model.shards):
            filename = f"model-{k + 1:05d}-of-{model.shards:05d}.safetensors"
            part = {n: tensors[n] for n in names[k * per : (k + 1) * per]}
            write_safetensors(directory / filename, part, {"format": "pt"})
            weight_map |= dict.fromkeys(part, filename)
        total = sum(len(t[2]) for t in tensors.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (directory / "config.json").write_text(json.dumps(model.config(), indent=2))
    (directory / "generation_config.json").write_text(json.dumps({"bos_token_id": 0, "eos_token_id": 2}))
    write_tokenizer(directory)
    return directory


def _byte_symbols() -> list[str]:
    """GPT-2's byte → printable character table (``bytes_to_unicode``), in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def write_tokenizer(directory: Path) -> None:
    specials = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    vocab = specials | {symbol: len(SPECIAL_TOKENS) + i for i, symbol in enumerate(_byte_symbols())}
    tokenizer: dict[str, Any] = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": i,
                "content": t,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for t, i in specials.items()
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": vocab,
            "merges": [],
        },
    }
    (directory / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|endoftext|>",
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "model_max_length": 2048,
        "chat_template": CHATML,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
