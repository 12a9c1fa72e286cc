"""Synthetic GGUF models load and run in the real llama-server, one small model per architecture.

The unit tests check the files against what we believe llama.cpp expects; only llama.cpp
itself can confirm it (an extra tensor, a wrong shape or a missing key fails the load).
Skipped, naming the places searched, when no llama-server binary is found.
"""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from gpufleet.common.net import free_port
from testkit.synthetic import ModelShape, WeightType, preset, scaled, write_model
from tests.support.engines import find_llama_server, llama_server_missing_reason

pytestmark = pytest.mark.e2e

Mode = Literal["generate", "embed", "rerank"]
SMALL: dict[str, Any] = {"n_layer": 2, "n_embd": 128, "n_ff": 256, "n_head": 4, "n_head_kv": 2, "n_vocab": 1024}
ENCODER: dict[str, Any] = {**SMALL, "n_head_kv": 4, "n_ctx_train": 512}

CASES: list[tuple[str, ModelShape, WeightType, Mode]] = [
    ("llama", scaled(preset("llama-3.1-8b"), **SMALL), "f16", "generate"),
    ("mixtral", scaled(preset("mixtral-8x7b"), **SMALL, n_expert=4, n_expert_used=2), "f16", "generate"),
    ("qwen2", scaled(preset("qwen2.5-0.5b"), **SMALL), "f16", "generate"),
    ("qwen3", scaled(preset("qwen3-8b"), **SMALL, head_dim=64), "f16", "generate"),
    ("qwen3moe", scaled(preset("qwen3-30b-a3b"), **SMALL, head_dim=64, n_expert=8, n_ff_exp=64), "f16", "generate"),
    ("gemma2", scaled(preset("gemma2-2b"), **SMALL, head_dim=64, sliding_window=64), "f16", "generate"),
    # 7 layers: gemma3 alternates 5 sliding-window layers with 1 global one
    (
        "gemma3",
        scaled(preset("gemma3-1b"), **{**SMALL, "n_layer": 7, "n_head_kv": 1}, head_dim=64, sliding_window=64),
        "f16",
        "generate",
    ),
    ("phi3", scaled(preset("phi3-mini"), **{**SMALL, "n_head_kv": 4}), "f16", "generate"),
    ("bert", scaled(preset("bert-base"), **ENCODER), "f16", "embed"),
    ("nomic-bert", scaled(preset("nomic-embed-text-v1.5"), **ENCODER), "f16", "embed"),
    ("xlm-roberta-reranker", scaled(preset("bge-reranker-v2-m3"), **{**ENCODER, "n_vocab": 2048}), "f16", "rerank"),
    # every weight type, and quantized blocks in the archs with unusual tensors
    ("llama-tiny-f32", preset("llama-tiny"), "f32", "generate"),
    ("llama-tiny-q8_0", preset("llama-tiny"), "q8_0", "generate"),
    ("llama-tiny-q4_0", preset("llama-tiny"), "q4_0", "generate"),
    (
        "qwen3moe-q4_0",
        scaled(preset("qwen3-30b-a3b"), **SMALL, head_dim=64, n_expert=8, n_ff_exp=64),
        "q4_0",
        "generate",
    ),
    (
        "gemma3-q8_0",
        scaled(preset("gemma3-1b"), **{**SMALL, "n_head_kv": 1}, head_dim=64, sliding_window=64),
        "q8_0",
        "generate",
    ),
    ("phi3-q4_0", scaled(preset("phi3-mini"), **{**SMALL, "n_head_kv": 4}), "q4_0", "generate"),
    ("bert-q8_0", scaled(preset("bert-base"), **ENCODER), "q8_0", "embed"),
    ("reranker-q4_0", scaled(preset("bge-reranker-v2-m3"), **{**ENCODER, "n_vocab": 2048}), "q4_0", "rerank"),
]


@pytest.fixture(scope="module")
def llama_server() -> Path:
    binary = find_llama_server()
    if binary is None:
        pytest.skip(llama_server_missing_reason())
    return binary


@contextmanager
def serving(binary: Path, model: Path, extra: list[str], log: Path) -> Iterator[str]:
    """``llama-server`` on a free loopback port until healthy; its base URL. Stopped on exit."""
    port = free_port()
    command = [
        str(binary),
        "-m",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-c",
        "256",
        "-ngl",
        "0",
        "-np",
        "1",
        "-t",
        "2",
        "--no-warmup",
        *extra,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-4000:]
                pytest.fail(f"llama-server exited with {process.returncode}:\n{tail}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama-server not healthy after 60 s:\n{log.read_text(errors='replace')[-4000:]}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _check_generate(url: str) -> None:
    response = httpx.post(
        url + "/completion", json={"prompt": "hello world", "n_predict": 4, "ignore_eos": True}, timeout=60
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tokens_predicted"] == 4
    assert body["tokens_evaluated"] >= 2
    chat = httpx.post(
        url + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        timeout=60,
    )
    assert chat.status_code == 200, chat.text
    usage = chat.json()["usage"]
    assert 1 <= usage["completion_tokens"] <= 4
    assert usage["prompt_tokens"] > 1


def _check_embed(url: str, n_embd: int) -> None:
    response = httpx.post(url + "/v1/embeddings", json={"input": ["hello world", "abc"]}, timeout=60)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert len(data) == 2
    for item in data:
        assert len(item["embedding"]) == n_embd
        assert all(math.isfinite(x) for x in item["embedding"])


def _check_rerank(url: str) -> None:
    documents = ["the cat sat", "on a mat", "hello"]
    response = httpx.post(url + "/v1/rerank", json={"query": "cat", "documents": documents}, timeout=60)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert sorted(r["index"] for r in results) == [0, 1, 2]
    assert all(math.isfinite(r["relevance_score"]) for r in results)


@pytest.mark.parametrize(("shape", "weight_type", "mode"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_loads_and_runs(
    llama_server: Path, tmp_path: Path, shape: ModelShape, weight_type: WeightType, mode: Mode
) -> None:
    model = write_model(tmp_path / "model.gguf", shape, weight_type, seed=1)
    extra = {"generate": [], "embed": ["--embeddings"], "rerank": ["--reranking"]}[mode]
    with serving(llama_server, model, extra, tmp_path / "server.log") as url:
        if mode == "generate":
            _check_generate(url)
        elif mode == "embed":
            _check_embed(url, shape.n_embd)
        else:
            _check_rerank(url)
