"""Convert a Hugging Face llama directory (as ``testkit.hf_model`` writes it) to a GGUF in f16.

For comparing engines on the same weights (``benchmarks/vllm_vs_llama_cpp.py``): the tensors are
the directory's, renamed to llama.cpp's names and converted to f16 (norms stay f32, as llama.cpp's
own converter keeps 1-D tensors), with the query and key projections permuted from Hugging Face's
rotary layout (the two halves of each head) to llama.cpp's (interleaved pairs), as
``convert_hf_to_gguf.py`` does. The metadata is ``testkit.synthetic``'s for a llama of that shape.

The tokenizer is not carried over: the GGUF gets ``testkit.synthetic``'s SentencePiece vocabulary
of the same size (token ids differ, which does not change the work per token the engines do).
Only what ``testkit.hf_model`` writes is read: one or more safetensors files in bf16, f16 or f32.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
from gguf import GGUFWriter

from testkit.synthetic import _add_metadata
from testkit.synthetic_presets import ModelShape

NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}
GLOBAL = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
GLOBAL["lm_head.weight"] = "output.weight"


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of one safetensors file, as float32."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    body = raw[8 + length :]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        data = body[start:end]
        if entry["dtype"] == "BF16":
            values = (np.frombuffer(data, "<u2").astype("<u4") << 16).view("<f4")
        elif entry["dtype"] == "F16":
            values = np.frombuffer(data, "<f2").astype(np.float32)
        elif entry["dtype"] == "F32":
            values = np.frombuffer(data, "<f4").copy()
        else:
            raise ValueError(f"{path}: tensor {name} has dtype {entry['dtype']}, not one this converter reads")
        tensors[name] = values.reshape(entry["shape"])
    return tensors


def rotary_permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """Hugging Face's q/k rows (per head: first halves, then second halves) → llama.cpp's (pairs)."""
    rows = weights.shape[0]
    return weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def gguf_name(name: str) -> str:
    if name in GLOBAL:
        return GLOBAL[name]
    parts = name.split(".")  # model.layers.<n>.<module>.<proj>.weight
    if parts[:2] != ["model", "layers"]:
        raise ValueError(f"unexpected tensor {name}")
    return f"blk.{parts[2]}.{NAMES['.'.join(parts[3:-1])]}.{parts[-1]}"


def convert(directory: Path, out: Path) -> Path:
    """Write ``out`` (GGUF, f16 weights) from the llama in ``directory``; returns ``out``."""
    config = json.loads((directory / "config.json").read_text())
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    shape = ModelShape(
        arch="llama",
        n_layer=config["num_hidden_layers"],
        n_embd=config["hidden_size"],
        n_ff=config["intermediate_size"],
        n_head=heads,
        n_head_kv=kv_heads,
        n_vocab=config["vocab_size"],
        n_ctx_train=config["max_position_embeddings"],
        head_dim=config.get("head_dim"),
        tied_embeddings=config.get("tie_word_embeddings", False),
    )
    tensors: dict[str, np.ndarray] = {}
    for file in sorted(directory.glob("*.safetensors")):
        tensors |= read_safetensors(file)
    writer = GGUFWriter(str(out), "llama")
    _add_metadata(writer, shape, "f16")
    for name, values in tensors.items():
        if name.endswith("q_proj.weight"):
            values = rotary_permute(values, heads)
        elif name.endswith("k_proj.weight"):
            values = rotary_permute(values, kv_heads)
        writer.add_tensor(gguf_name(name), values.astype(np.float16 if values.ndim > 1 else np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
