"""Compute buffers: the scratch memory llama.cpp reserves for one forward pass, per device.

llama.cpp sizes them by building the worst-case graph (``n_tokens = min(n_ctx, n_ubatch)``
tokens, every KV cell visible) and letting ggml's allocator place every intermediate
tensor, re-using memory once a tensor's last reader has run and computing element-wise
ops in place. The buffer is the allocator's high-water mark. We do not replay the
graph; we add up the tensors that are alive together at the two peaks of a transformer
layer, which is what the high-water mark is made of (all f32, T = tokens, E = n_embd):

- attention, without flash attention: the K·Q scores ``n_kv × T × n_head`` (the softmax
  runs in place on them) + the mask ``n_kv × T`` + Q/K/V and the layer's input;
- attention, with flash attention: no score matrix; the f16 mask, Q, K, V, the output;
- feed-forward: the layer input, its norm, gate and up (``F × T`` each) and their
  product, or for a mixture of experts the same per *used* expert;
- the output layer: logits ``n_vocab × n_outputs``.

Inputs (mask, positions) live for the whole graph and are counted once per device that
reads them, as is the activation handed over from the previous device.
The formulas are checked against llama.cpp's own reports in
``benchmarks/estimate_accuracy.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpufleet.estimate.model_info import ModelInfo

F32 = 4
F16 = 2


@dataclass(frozen=True)
class GraphShape:
    """The worst-case graph llama.cpp reserves buffers for."""

    n_tokens: int  # T = min(n_ctx, n_ubatch)
    n_outputs: int  # rows of logits the graph produces
    n_kv: int  # KV cells visible to a full-attention layer (one stream)
    n_kv_swa: int  # ... to a sliding-window layer
    n_stream: int  # KV streams (1 when unified)
    flash_attn: bool


def mask_bytes(shape: GraphShape, n_kv: int) -> int:
    """The attention mask input: one row of ``n_kv`` per token (f16 for flash attention)."""
    per_stream_tokens = -(-shape.n_tokens // shape.n_stream)
    return n_kv * per_stream_tokens * shape.n_stream * (F16 if shape.flash_attn else F32)


def inputs_bytes(info: ModelInfo, shape: GraphShape, swa_here: bool, full_here: bool) -> int:
    """Graph inputs a device holding layers reads: masks, positions, output row ids."""
    total = shape.n_tokens * 4 * 2 + shape.n_outputs * 4  # positions (int32), token ids, output ids
    if info.encoder:  # non-causal attention over the batch itself
        return total + shape.n_tokens * shape.n_tokens * (F16 if shape.flash_attn else F32)
    if full_here:
        total += mask_bytes(shape, shape.n_kv)
    if swa_here:
        total += mask_bytes(shape, shape.n_kv_swa)
    return total


def attention_peak(info: ModelInfo, il: int, shape: GraphShape) -> int:
    t = shape.n_tokens
    n_head = info.n_head[il]
    if n_head == 0:
        return 0
    n_kv = t if info.encoder else (shape.n_kv_swa if info.swa_layers[il] else shape.n_kv)
    q = info.head_dim_k * n_head * t * F32
    k = info.n_embd_k_gqa(il) * t * F32
    v = info.n_embd_v_gqa(il) * t * F32
    residual = info.n_embd * t * F32
    if shape.flash_attn:
        out = info.head_dim_v * n_head * t * F32
        casts = (k + v) // 2 if info.encoder else 0  # encoders' K and V are cast to f16 for flash attention
        return residual + q + k + v + out + casts
    scores = n_kv * t * n_head * F32
    return residual + q + scores + info.head_dim_v * n_head * t * F32


def ffn_peak(info: ModelInfo, shape: GraphShape) -> int:
    """Gated FFNs hold gate, up and their product at once (3 × F × T); a plain one its up projection,
    activated in place, beside the residual stream, its norm and the output (4 × E × T)."""
    t = shape.n_tokens
    e = info.n_embd * t * F32
    if info.n_expert and info.n_expert_used:
        # Routed experts: each token's hidden state for every used expert (gate, up, product),
        # plus router logits and weights.
        hidden = info.n_ff_exp * info.n_expert_used * t * F32
        router = info.n_expert * t * F32 * 3
        return 2 * e + 3 * hidden + router
    if info.ffn_gated:
        return 2 * e + 3 * info.n_ff * t * F32
    return 4 * e + info.n_ff * t * F32


def layer_peak(info: ModelInfo, il: int, shape: GraphShape) -> int:
    return max(attention_peak(info, il, shape), ffn_peak(info, shape))


def output_peak(info: ModelInfo, shape: GraphShape) -> int:
    """The output layer. Decoders keep only the rows that produce output before it (``get_rows`` in the
    last block): norm and logits for ``n_outputs`` rows. Encoders pool over every token."""
    if info.kind != "llm":
        return info.n_embd * shape.n_tokens * F32 * 2 + info.n_embd * shape.n_outputs * F32
    return (2 * info.n_embd + info.n_vocab) * shape.n_outputs * F32


def cpu_work_buffer(info: ModelInfo, shape: GraphShape) -> int:
    """Scratch the CPU backend allocates outside the compute buffer while computing a graph.

    Without flash attention, ``V·softmax(KQ)`` converts the f32 scores to f16 first: ``n_kv × T ×
    n_head × 2`` bytes, the largest conversion of the graph. With flash attention the CPU needs only
    small per-thread buffers.
    """
    if shape.flash_attn:
        return 0
    n_kv = shape.n_tokens if info.encoder else shape.n_kv
    return n_kv * shape.n_tokens * max(info.n_head) * F16


def embeddings_bytes(info: ModelInfo, shape: GraphShape) -> int:
    """The input embedding lookup, computed on the CPU: ``E × T``."""
    return info.n_embd * shape.n_tokens * F32
