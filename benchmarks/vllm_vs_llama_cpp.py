"""The same tiny llama served through gpufleet by vLLM (CPU) and by llama.cpp: start time and tokens/s.

One ``gpufleet start`` (server and embedded worker, this machine's CPU). The model is
``testkit.hf_model.SERVABLE`` (2 layers, hidden 256, bf16 safetensors), deployed as its Hugging
Face directory with ``backend: "vllm"``, and the same weights converted to a GGUF in f16
(``testkit.hf_to_gguf``) deployed with llama.cpp. One engine at a time (the other deleted first),
each given the worker's whole CPU share. Per engine:

- **start → first answer**: from the deploy request to the first chat completion answered through
  the gateway (placement, engine start, model load, first request);
- **tokens/s**: ``--runs`` non-streamed chat completions of ``--tokens`` generated tokens each
  (``ignore_eos``), through the gateway, completion tokens over wall time; the median is reported.

Prints a table and writes JSON (``--out``). vLLM must be installed (``gpufleet engines install vllm``)
and llama.cpp built (``gpufleet engines install llama.cpp``).

    .venv/bin/python -m benchmarks.vllm_vs_llama_cpp --out benchmarks/results/vllm_vs_llama_cpp.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from benchmarks.lifecycle import Gpufleet
from gpufleet.worker.engines.binaries import find_or_build
from gpufleet.worker.engines.vllm_install import detect_accelerator, find_install
from testkit.hf_model import SERVABLE, write_tiny_llama
from testkit.hf_to_gguf import convert

HI = [{"role": "user", "content": "Tell me a story."}]
CPU = {"cpu_offloading": True}  # both on this CPU


def chat(gateway: httpx.Client, name: str, tokens: int) -> dict[str, Any]:
    body = {"model": name, "messages": HI, "max_tokens": tokens, "temperature": 0, "ignore_eos": True}
    answer = gateway.post("/v1/chat/completions", json=body)
    answer.raise_for_status()
    return dict(answer.json())


def measure(fleet: Gpufleet, name: str, body: dict[str, Any], tokens: int, runs: int) -> dict[str, Any]:
    gateway = httpx.Client(
        base_url=fleet.url, headers={"Authorization": f"Bearer {fleet.key}"}, timeout=300, trust_env=False
    )
    started = time.perf_counter()
    created = fleet.api.post("/api/models", json={"name": name, **body})
    created.raise_for_status()
    model_id = created.json()["id"]
    while True:
        listed = fleet.api.get("/api/model-instances", params={"model_id": model_id}).json()
        if listed and listed[0]["state"] == "running":
            break
        if listed and listed[0]["state"] == "error" and listed[0]["restart_count"] >= 2:
            raise RuntimeError(f"{name}: {listed[0]['state_message']}")
        if time.perf_counter() - started > 300:
            raise RuntimeError(f"{name} did not run within 300 s: {listed}")
        time.sleep(0.05)
    running = time.perf_counter() - started
    chat(gateway, name, 1)
    first_answer = time.perf_counter() - started
    chat(gateway, name, tokens)  # warm-up at the measured length
    rates = []
    for _ in range(runs):
        begun = time.perf_counter()
        reply = chat(gateway, name, tokens)
        rates.append(reply["usage"]["completion_tokens"] / (time.perf_counter() - begun))
    fleet.delete(model_id, listed[0]["pid"])
    return {
        "running_s": round(running, 2),
        "first_answer_s": round(first_answer, 2),
        "tokens_per_s": round(statistics.median(rates), 1),
        "tokens_per_s_runs": [round(r, 1) for r in rates],
        "tokens": tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=128, help="tokens generated per measured request")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/vllm_vs_llama_cpp.json"))
    args = parser.parse_args()
    if find_install(detect_accelerator()) is None:
        raise SystemExit("vLLM is not installed: run 'gpufleet engines install vllm' first")
    binaries = find_or_build(None, None)
    with tempfile.TemporaryDirectory(prefix="vllm-vs-llama-") as temporary:
        root = Path(temporary)
        models = root / "models"
        directory = write_tiny_llama(models / "tiny-llama", SERVABLE)
        gguf = convert(directory, models / "tiny-llama-f16.gguf")
        fleet = Gpufleet(root, binaries.server, [models])
        try:
            results = {
                "vllm": measure(
                    fleet,
                    "tiny-vllm",
                    {"source": "local_path", "local_path": str(directory), "backend": "vllm", "ctx_size": 2048, **CPU},
                    args.tokens,
                    args.runs,
                ),
                "llama.cpp": measure(
                    fleet,
                    "tiny-llama-cpp",
                    {"source": "local_path", "local_path": str(gguf), "backend": "llama.cpp", "ctx_size": 2048, **CPU},
                    args.tokens,
                    args.runs,
                ),
            }
        finally:
            fleet.stop()
    vllm, llama = results["vllm"], results["llama.cpp"]
    report = {
        "model": "testkit.hf_model.SERVABLE (llama, 2 layers, hidden 256, 4 heads of 64, vocab 320)",
        "weights": {"vllm": "bf16 safetensors", "llama.cpp": "f16 GGUF (testkit.hf_to_gguf)"},
        "engines": {"vllm": vllm, "llama.cpp": llama},
        "ratio_vllm_over_llama_cpp": {
            "first_answer_s": round(vllm["first_answer_s"] / llama["first_answer_s"], 1),
            "tokens_per_s": round(vllm["tokens_per_s"] / llama["tokens_per_s"], 2),
        },
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d"),
    }
    table = Table(title="vLLM (CPU) vs llama.cpp through gpufleet, same tiny llama")
    for column in ("engine", "deploy → running", "deploy → first answer", f"tokens/s ({args.tokens} tokens)"):
        table.add_column(column)
    for name, row in results.items():
        table.add_row(name, f"{row['running_s']} s", f"{row['first_answer_s']} s", str(row["tokens_per_s"]))
    ratios = report["ratio_vllm_over_llama_cpp"]
    table.add_row("vLLM / llama.cpp", "", f"{ratios['first_answer_s']}×", f"{ratios['tokens_per_s']}×")
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
