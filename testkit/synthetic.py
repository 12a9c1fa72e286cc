"""Synthetic GGUF models: real llama.cpp architectures with random (or absent) weights.

Tests, benchmarks and capacity planning need model files that llama.cpp treats exactly
like the real thing (same tensor names, shapes, types and metadata, so the same memory
use and the same code paths) without downloading them. ``write_model`` produces one from
a ``ModelShape``:

* ``sparse=False`` fills the weights with seeded noise of about N(0, 0.02)'s size (norms
  1.0 and biases 0.0 in f32), small enough that inference runs without NaNs. Quantized tensors
  are random but valid Q8_0/Q4_0 blocks generated directly (quantizing noise would only
  cost time).
* ``sparse=True`` writes the header and tensor table, then extends the file to its full
  size with a hole (where the filesystem has sparse files): a 228 GB Q4_0 llama-3.1-405b
  takes only its header on disk (mostly the vocabulary, ~2.8 MB) and half a second, and a
  GGUF reader computes the same offsets and sizes as for the real file.

The tensor table follows each arch's ``load_arch_tensors`` in llama.cpp's
``src/models/<arch>.cpp``: it must list exactly the tensors llama.cpp creates (an extra
one fails the load), and tensor types follow llama.cpp's converter and quantizer: 1-D
tensors, the MoE router, position and token-type embeddings stay f32; matrices take
``weight_type``, falling back to f16 where a row is not a whole number of 32-value blocks.

Tokenizers (see ``synthetic_tokenizer``): SentencePiece for decoders, WordPiece for bert and
nomic-bert, and for the xlm-roberta reranker the Unigram ("t5") tokenizer real XLM-R GGUFs
use; llama.cpp accepts it without a precompiled_charsmap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from io import BufferedWriter
from pathlib import Path
from typing import Literal

import numpy as np
from gguf import GGML_QUANT_SIZES, GGML_QUANT_VERSION, GGMLQuantizationType, GGUFWriter, LlamaFileType, PoolingType

from testkit.synthetic_presets import (
    NORM_EPS,
    PRESETS,
    ROPE_BASE,
    ModelShape,
    check_shape,
    preset,
    scaled,
)
from testkit.synthetic_tokenizer import Vocab, vocab_for

__all__ = [
    "PRESETS",
    "ModelShape",
    "TensorSpec",
    "WeightType",
    "parameter_count",
    "preset",
    "scaled",
    "tensor_plan",
    "write_model",
]

WeightType = Literal["f32", "f16", "q8_0", "q4_0"]
Role = Literal["weight", "f32", "norm", "bias"]

ALIGNMENT = 32
WEIGHT_STD = 0.02
CHUNK_ELEMENTS = 1 << 22  # generate large tensors piecewise to bound memory

_QTYPES: dict[str, GGMLQuantizationType] = {
    "f32": GGMLQuantizationType.F32,
    "f16": GGMLQuantizationType.F16,
    "q8_0": GGMLQuantizationType.Q8_0,
    "q4_0": GGMLQuantizationType.Q4_0,
}
_FILE_TYPES: dict[str, LlamaFileType] = {
    "f32": LlamaFileType.ALL_F32,
    "f16": LlamaFileType.MOSTLY_F16,
    "q8_0": LlamaFileType.MOSTLY_Q8_0,
    "q4_0": LlamaFileType.MOSTLY_Q4_0,
}
# Spread of the quantized integers (uniform int8; uniform nibble - 8), to scale blocks to WEIGHT_STD.
_QUANT_SPREAD = {GGMLQuantizationType.Q8_0: 73.9, GGMLQuantizationType.Q4_0: 4.61}


@dataclass(frozen=True)
class TensorSpec:
    """One tensor as llama.cpp creates it: ``ne`` in ggml order (``ne[0]`` is the contiguous row)."""

    name: str
    ne: tuple[int, ...]
    role: Role = "weight"  # "weight": takes weight_type; "f32": random f32; "norm": ones; "bias": zeros

    @property
    def n_elements(self) -> int:
        return math.prod(self.ne)


def _decoder_layer(shape: ModelShape, i: int) -> list[TensorSpec]:
    e, h, arch = shape.n_embd, shape.n_embd_head, shape.arch
    q, kv = h * shape.n_head, h * shape.n_head_kv
    p = f"blk.{i}."
    out = [TensorSpec(p + "attn_norm.weight", (e,), "norm")]
    if arch == "phi3":  # phi3's converter keeps Q, K and V fused
        out.append(TensorSpec(p + "attn_qkv.weight", (e, q + 2 * kv)))
    else:
        out += [
            TensorSpec(p + "attn_q.weight", (e, q)),
            TensorSpec(p + "attn_k.weight", (e, kv)),
            TensorSpec(p + "attn_v.weight", (e, kv)),
        ]
    if arch == "qwen2":  # Qwen2 keeps biases on Q, K and V only
        out += [TensorSpec(p + f"attn_{x}.bias", (n,), "bias") for x, n in (("q", q), ("k", kv), ("v", kv))]
    out.append(TensorSpec(p + "attn_output.weight", (q, e)))
    if arch in ("qwen3", "qwen3moe", "gemma3"):
        out += [TensorSpec(p + "attn_q_norm.weight", (h,), "norm"), TensorSpec(p + "attn_k_norm.weight", (h,), "norm")]
    if arch in ("gemma2", "gemma3"):
        out += [
            TensorSpec(p + "post_attention_norm.weight", (e,), "norm"),
            TensorSpec(p + "post_ffw_norm.weight", (e,), "norm"),
        ]
    out.append(TensorSpec(p + "ffn_norm.weight", (e,), "norm"))
    if shape.n_expert:
        f, x = shape.expert_ff, shape.n_expert
        out += [
            TensorSpec(p + "ffn_gate_inp.weight", (e, x), "f32"),
            TensorSpec(p + "ffn_gate_exps.weight", (e, f, x)),
            TensorSpec(p + "ffn_down_exps.weight", (f, e, x)),
            TensorSpec(p + "ffn_up_exps.weight", (e, f, x)),
        ]
    elif arch == "phi3":  # gate and up fused into one 2*n_ff projection
        out += [
            TensorSpec(p + "ffn_down.weight", (shape.n_ff, e)),
            TensorSpec(p + "ffn_up.weight", (e, 2 * shape.n_ff)),
        ]
    else:
        out += [
            TensorSpec(p + "ffn_gate.weight", (e, shape.n_ff)),
            TensorSpec(p + "ffn_down.weight", (shape.n_ff, e)),
            TensorSpec(p + "ffn_up.weight", (e, shape.n_ff)),
        ]
    return out


def _encoder_layer(shape: ModelShape, i: int) -> list[TensorSpec]:
    e, f, p = shape.n_embd, shape.n_ff, f"blk.{i}."
    norms = ("attn_output_norm", "layer_output_norm")
    if shape.arch == "nomic-bert":  # fused QKV, SwiGLU FFN, no biases on the projections
        out = [
            TensorSpec(p + "attn_qkv.weight", (e, 3 * e)),
            TensorSpec(p + "attn_output.weight", (e, e)),
            TensorSpec(p + "ffn_up.weight", (e, f)),
            TensorSpec(p + "ffn_gate.weight", (e, f)),
            TensorSpec(p + "ffn_down.weight", (f, e)),
        ]
    else:
        out = []
        for name, ne in (
            ("attn_q", (e, e)),
            ("attn_k", (e, e)),
            ("attn_v", (e, e)),
            ("attn_output", (e, e)),
            ("ffn_up", (e, f)),
            ("ffn_down", (f, e)),
        ):
            out += [TensorSpec(p + name + ".weight", ne), TensorSpec(p + name + ".bias", (ne[1],), "bias")]
    for norm in norms:
        out += [TensorSpec(p + norm + ".weight", (e,), "norm"), TensorSpec(p + norm + ".bias", (e,), "bias")]
    return out


def tensor_plan(shape: ModelShape) -> list[TensorSpec]:
    """Every tensor llama.cpp loads for ``shape``, in file order."""
    check_shape(shape)
    e, v = shape.n_embd, shape.n_vocab
    plan = [TensorSpec("token_embd.weight", (e, v))]
    if shape.is_encoder:
        n_types = _token_type_count(shape)
        plan.append(TensorSpec("token_types.weight", (e, n_types), "f32"))
        if shape.arch == "bert":
            plan.append(TensorSpec("position_embd.weight", (e, shape.n_ctx_train), "f32"))
        plan += [TensorSpec("token_embd_norm.weight", (e,), "norm"), TensorSpec("token_embd_norm.bias", (e,), "bias")]
        if shape.variant == "xlm-roberta":  # sequence-classification head: dense + tanh, then one score
            plan += [
                TensorSpec("cls.weight", (e, e)),
                TensorSpec("cls.bias", (e,), "bias"),
                TensorSpec("cls.output.weight", (e, 1)),
                TensorSpec("cls.output.bias", (1,), "bias"),
            ]
        for i in range(shape.n_layer):
            plan += _encoder_layer(shape, i)
        return plan
    plan.append(TensorSpec("output_norm.weight", (e,), "norm"))
    if not (shape.tied_embeddings or shape.arch == "gemma2"):  # gemma2's loader always ties
        plan.append(TensorSpec("output.weight", (e, v)))
    for i in range(shape.n_layer):
        plan += _decoder_layer(shape, i)
    return plan


def _token_type_count(shape: ModelShape) -> int:
    """BERT segment types: 1 for XLM-RoBERTa, 2 for BERT and nomic-bert."""
    return 1 if shape.variant == "xlm-roberta" else 2


def parameter_count(shape: ModelShape) -> int:
    """Total weights in the file (tied embeddings counted once), comparable to published sizes."""
    return sum(spec.n_elements for spec in tensor_plan(shape))


def _ggml_type(spec: TensorSpec, weight_type: WeightType) -> GGMLQuantizationType:
    if spec.role != "weight" or weight_type == "f32":
        return GGMLQuantizationType.F32
    qtype = _QTYPES[weight_type]
    block, _ = GGML_QUANT_SIZES[qtype]
    return qtype if spec.ne[0] % block == 0 else GGMLQuantizationType.F16


def _nbytes(spec: TensorSpec, qtype: GGMLQuantizationType) -> int:
    block, size = GGML_QUANT_SIZES[qtype]
    return spec.n_elements // block * size


def _pad(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def _model_name(shape: ModelShape) -> str:
    label = next((name for name, known in PRESETS.items() if known == shape), None)
    kind = shape.variant or shape.arch
    return f"synthetic {label}" if label else f"synthetic {kind} {shape.n_layer}x{shape.n_embd}"


def _add_vocab(w: GGUFWriter, vocab: Vocab) -> None:
    w.add_tokenizer_model(vocab.model)
    w.add_tokenizer_pre("default")
    w.add_token_list(vocab.tokens)
    w.add_token_scores(vocab.scores)
    w.add_token_types(vocab.types)
    if vocab.token_type_count is not None:
        w.add_token_type_count(vocab.token_type_count)
    setters = {
        "bos": w.add_bos_token_id,
        "eos": w.add_eos_token_id,
        "unk": w.add_unk_token_id,
        "sep": w.add_sep_token_id,
        "pad": w.add_pad_token_id,
        "mask": w.add_mask_token_id,
    }
    for role, token_id in vocab.special_ids.items():
        setters[role](token_id)
    w.add_add_bos_token(vocab.add_bos)
    w.add_add_eos_token(vocab.add_eos)
    if vocab.add_sep:
        w.add_add_sep_token(True)
    if vocab.extra_flags.get("add_space_prefix") is not None:
        w.add_add_space_prefix(vocab.extra_flags["add_space_prefix"])
    if vocab.extra_flags.get("remove_extra_whitespaces") is not None:
        w.add_remove_extra_whitespaces(vocab.extra_flags["remove_extra_whitespaces"])
    if vocab.chat_template:
        w.add_chat_template(vocab.chat_template)


def _add_metadata(w: GGUFWriter, shape: ModelShape, weight_type: WeightType) -> None:
    """The keys llama.cpp's hparams loaders read (required ones and the optional ones that change behaviour)."""
    arch = shape.arch
    w.add_type("model")
    w.add_name(_model_name(shape))
    w.add_file_type(_FILE_TYPES[weight_type])
    if weight_type.startswith("q"):
        w.add_quantization_version(GGML_QUANT_VERSION)
    w.add_custom_alignment(ALIGNMENT)
    w.add_vocab_size(shape.n_vocab)
    w.add_context_length(shape.n_ctx_train)
    w.add_embedding_length(shape.n_embd)
    w.add_block_count(shape.n_layer)
    w.add_feed_forward_length(shape.n_ff)
    w.add_head_count(shape.n_head)
    w.add_head_count_kv(shape.n_head_kv)
    if shape.head_dim is not None:
        w.add_key_length(shape.head_dim)
        w.add_value_length(shape.head_dim)
    if arch in ROPE_BASE:
        base = 1e6 if shape.variant in ("mistral", "mixtral") else ROPE_BASE[arch]
        w.add_rope_freq_base(base)
    if arch == "llama":
        w.add_rope_dimension_count(shape.n_embd_head)
    if shape.is_encoder:
        w.add_layer_norm_eps(1e-5 if shape.variant == "xlm-roberta" else NORM_EPS[arch])
        w.add_causal_attention(False)
        w.add_pooling_type(PoolingType.RANK if shape.variant == "xlm-roberta" else PoolingType.MEAN)
    else:
        w.add_layer_norm_rms_eps(NORM_EPS[arch])
    if shape.n_expert:
        w.add_expert_count(shape.n_expert)
        w.add_expert_used_count(shape.n_expert_used)
        if arch == "qwen3moe":
            w.add_expert_feed_forward_length(shape.expert_ff)
    if shape.sliding_window is not None:
        w.add_sliding_window(shape.sliding_window)
    if arch == "gemma2":
        w.add_attn_logit_softcapping(50.0)
        w.add_final_logit_softcapping(30.0)
    if arch == "gemma3":
        w.add_rope_freq_base_swa(10000.0)
    _add_vocab(w, vocab_for(shape))


def _quant_blocks(rng: np.random.Generator, n_blocks: int, qtype: GGMLQuantizationType) -> np.ndarray:
    """Random valid blocks: an fp16 scale, then random packed integers (nibbles or int8)."""
    _, size = GGML_QUANT_SIZES[qtype]
    blocks = np.empty((n_blocks, size), dtype=np.uint8)
    scale = (rng.uniform(0.5, 1.5, n_blocks) * (WEIGHT_STD / _QUANT_SPREAD[qtype])).astype("<f2")
    blocks[:, :2] = scale.view(np.uint8).reshape(n_blocks, 2)
    blocks[:, 2:] = rng.integers(0, 256, size=(n_blocks, size - 2), dtype=np.uint8)
    return blocks


def _f16_noise(rng: np.random.Generator, count: int) -> np.ndarray:
    """Symmetric f16 noise built from random bits, ~10x faster than a normal draw (f16 is the
    default type, and mid-size test models are hundreds of MB): random sign and mantissa, one
    of the exponents 2^-9..2^-6, so |w| lies in [0.002, 0.031) with a standard deviation ~0.014."""
    bits = rng.integers(0, 1 << 16, size=count, dtype="<u2")
    exponent = bits >> 10
    exponent &= 0x3
    exponent += 6  # biased exponents 6..9 = 2^-9..2^-6
    exponent <<= 10
    bits &= 0x83FF  # keep sign and mantissa
    bits |= exponent
    return bits


def _write_tensor(out: BufferedWriter, spec: TensorSpec, qtype: GGMLQuantizationType, rng: np.random.Generator) -> None:
    if spec.role in ("norm", "bias"):
        out.write((np.ones if spec.role == "norm" else np.zeros)(spec.n_elements, dtype="<f4").tobytes())
        return
    block, _ = GGML_QUANT_SIZES[qtype]
    for start in range(0, spec.n_elements, CHUNK_ELEMENTS):
        count = min(CHUNK_ELEMENTS, spec.n_elements - start)
        if qtype in _QUANT_SPREAD:
            out.write(_quant_blocks(rng, count // block, qtype).data)
            continue
        if qtype == GGMLQuantizationType.F16:
            out.write(_f16_noise(rng, count).data)
            continue
        values = rng.standard_normal(count, dtype=np.float32)
        values *= WEIGHT_STD
        out.write(values.astype("<f4").tobytes())


def write_model(
    path: Path, shape: ModelShape, weight_type: WeightType = "f16", *, sparse: bool = False, seed: int = 0
) -> Path:
    """Write a GGUF file of ``shape`` to ``path`` and return the path.

    ``sparse=True`` leaves the weights as a hole (reads as zeros, takes no disk space):
    for sizing and planning, not for inference. ``seed`` makes the random weights reproducible.
    """
    if weight_type not in _QTYPES:
        raise ValueError(f"weight_type {weight_type!r} is not one of {', '.join(_QTYPES)}")
    plan = tensor_plan(shape)
    types = [_ggml_type(spec, weight_type) for spec in plan]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(path, shape.arch)
    try:
        _add_metadata(writer, shape, weight_type)
        for spec, qtype in zip(plan, types, strict=True):
            # numpy order (outermost first); raw_dtype makes the writer take the shape as element counts
            writer.add_tensor_info(
                spec.name, tuple(reversed(spec.ne)), np.dtype(np.float32), _nbytes(spec, qtype), raw_dtype=qtype
            )
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        assert writer.fout is not None
        out = writer.fout[0]
        header_end = out.tell()
        data_start = _pad(header_end)
        total = data_start + sum(_pad(_nbytes(spec, qtype)) for spec, qtype in zip(plan, types, strict=True))
        if sparse:
            out.truncate(total)
        else:
            rng = np.random.default_rng(seed)
            out.write(bytes(data_start - header_end))
            for spec, qtype in zip(plan, types, strict=True):
                _write_tensor(out, spec, qtype, rng)
                size = _nbytes(spec, qtype)
                out.write(bytes(_pad(size) - size))
            if out.tell() != total:
                raise RuntimeError(f"wrote {out.tell()} bytes, expected {total}")
    except BaseException:
        writer.close()
        path.unlink(missing_ok=True)
        raise
    writer.close()
    return path
