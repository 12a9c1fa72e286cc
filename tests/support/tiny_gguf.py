"""A few-hundred-KB llama GGUF written with the gguf package, for reader and estimator unit tests."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np


def write_tiny_llama(
    path: Path,
    *,
    n_layer: int = 2,
    n_embd: int = 64,
    n_ff: int = 128,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_vocab: int = 300,
    ctx: int = 2048,
    tied: bool = False,
    extra_tokens: int = 0,
) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(ctx)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("llama")
    tokens = [f"t{i}" for i in range(n_vocab + extra_tokens)]
    writer.add_token_list(tokens)
    rng = np.random.default_rng(0)

    def tensor(name: str, shape: tuple[int, ...]) -> None:
        writer.add_tensor(name, rng.standard_normal(shape).astype(np.float16))

    tensor("token_embd.weight", (n_vocab + extra_tokens, n_embd))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    if not tied:
        tensor("output.weight", (n_vocab + extra_tokens, n_embd))
    head_dim = n_embd // n_head
    for i in range(n_layer):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, np.float32))
        tensor(f"blk.{i}.attn_q.weight", (n_embd, n_embd))
        tensor(f"blk.{i}.attn_k.weight", (n_head_kv * head_dim, n_embd))
        tensor(f"blk.{i}.attn_v.weight", (n_head_kv * head_dim, n_embd))
        tensor(f"blk.{i}.attn_output.weight", (n_embd, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, np.float32))
        tensor(f"blk.{i}.ffn_gate.weight", (n_ff, n_embd))
        tensor(f"blk.{i}.ffn_up.weight", (n_ff, n_embd))
        tensor(f"blk.{i}.ffn_down.weight", (n_embd, n_ff))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
