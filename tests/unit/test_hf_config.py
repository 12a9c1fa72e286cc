"""config.json → HfConfig: defaults, nested text_config, dtype rules and clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gpufleet.common.errors import InvalidInput
from gpufleet.estimate.hf_config import HfConfigError, parse_config, read_config
from testkit.hf_model import TinyLlama, write_tiny_llama

LLAMA3_8B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 8192,
    "vocab_size": 128256,
    "torch_dtype": "bfloat16",
}


def test_llama3_fields_and_defaults() -> None:
    config = parse_config(LLAMA3_8B)
    assert (config.architecture, config.num_hidden_layers, config.num_key_value_heads) == ("LlamaForCausalLM", 32, 8)
    assert config.head_dim == 4096 // 32 == 128
    assert config.dtype_bytes == 2
    assert config.derived_max_len == 8192
    assert not config.tie_word_embeddings


def test_kv_heads_default_to_heads_and_float32_serves_as_bfloat16() -> None:
    config = parse_config({k: v for k, v in LLAMA3_8B.items() if k not in ("num_key_value_heads", "torch_dtype")})
    assert config.num_key_value_heads == 32
    assert (config.dtype, config.serving_dtype, config.dtype_bytes) == ("float32", "bfloat16", 2)


def test_nested_text_config_wins_except_architecture() -> None:
    data = {
        "architectures": ["Gemma3ForConditionalGeneration"],
        "torch_dtype": "bfloat16",
        "vision_config": {"hidden_size": 1152, "num_hidden_layers": 27},
        "text_config": {
            "model_type": "gemma3_text",
            "hidden_size": 2560,
            "intermediate_size": 10240,
            "num_hidden_layers": 34,
            "num_attention_heads": 8,
            "num_key_value_heads": 4,
            "head_dim": 256,
            "max_position_embeddings": 131072,
            "vocab_size": 262208,
            "sliding_window": 1024,
            "layer_types": ["sliding_attention"] * 5 + ["full_attention"] + ["sliding_attention"] * 28,
        },
    }
    config = parse_config(data)
    assert config.architecture == "Gemma3ForConditionalGeneration"
    assert (config.hidden_size, config.head_dim, config.num_hidden_layers, config.dtype) == (2560, 256, 34, "bfloat16")
    assert config.is_sliding(0) and not config.is_sliding(5)


@pytest.mark.parametrize(
    ("rope", "expected"),
    [
        ({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}, 131072),
        ({"rope_type": "llama3", "factor": 8.0}, 8192),  # already the scaled context
        ({"type": "dynamic", "factor": 2.0}, 16384),
    ],
)
def test_rope_scaling_extends_the_default_length(rope: dict[str, Any], expected: int) -> None:
    assert parse_config(LLAMA3_8B | {"rope_scaling": rope}).derived_max_len == expected


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"architectures": []}, "no 'architectures'"),
        ({"hidden_size": None}, "missing 'hidden_size'"),
        ({"num_hidden_layers": "32"}, "'num_hidden_layers' must be a positive integer"),
        ({"num_key_value_heads": 5}, "not a multiple of num_key_value_heads 5"),
        ({"torch_dtype": "int8"}, "unsupported dtype 'int8'"),
        ({"layer_types": ["full_attention"]}, "one type per layer"),
    ],
)
def test_errors_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(HfConfigError, match=message):
        parse_config(LLAMA3_8B | change)


def test_reads_a_written_model_and_reports_a_missing_config(tmp_path: Path) -> None:
    config = read_config(write_tiny_llama(tmp_path / "m", TinyLlama(tie_word_embeddings=True)))
    assert (config.num_hidden_layers, config.head_dim, config.tie_word_embeddings) == (2, 16, True)
    with pytest.raises(InvalidInput, match=r"no config\.json"):
        read_config(tmp_path / "absent")
