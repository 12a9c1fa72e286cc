"""Scheduler speed: how long one placement decision takes on clusters of 10 to 10,000 workers × 8 GPUs.

Clusters of H100 80 GB workers (2 TiB RAM each): empty, with 5 of 8 GPUs of every worker full, and
empty but uneven: each GPU reports its own amount of memory in use by other processes (0–2 GiB,
seeded), as live workers do, so no two workers look alike and grouping look-alikes cannot help.
Scenarios, on sparse GGUF files of real shapes (the estimator reads only their headers):

- ``8B single GPU``: Llama-3.1-8B Q8_0, one decision on the unchanged cluster each time;
- ``70B F16 2 GPUs``: Llama-3.1-70B F16, needs two GPUs of one worker;
- ``405B RPC``: Llama-3.1-405B F16, needs more than one worker (llama.cpp RPC);
- ``binpack 8B`` / ``spread 8B``: successive replicas, each decision seeing the previous claims.

A decision is ``schedule(request, snapshot)`` for a fresh request (so per-request memoisation is
paid every time); snapshots are built once per cluster, as the controller does per pass, and the
time to build one (``ClusterSnapshot(workers)`` from the worker views) is reported too. Reports
p50/p99 per decision; the target is p99 ≤ 20 ms at 10,000 workers. With ``--peer``, GPUStack
2.3.0's own scheduler (``benchmarks/peers/``) is timed on the same clusters and models, and the
ratio printed.

    python -m benchmarks.scheduler [--sizes 10,100,1000,10000] [--decisions 50] [--peer] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from gpufleet.common.units import GiB, MiB
from gpufleet.estimate.config import RunConfig
from gpufleet.estimate.gguf import read_model
from gpufleet.estimate.memory import Estimator
from gpufleet.estimate.model_info import model_info
from gpufleet.scheduler.framework import Placement, Request
from gpufleet.scheduler.scheduler import schedule
from gpufleet.scheduler.snapshot import ClusterSnapshot, DeviceView, WorkerView
from testkit.synthetic import preset, write_model

console = Console(highlight=False, soft_wrap=True, width=160)
GPU_MEMORY = 80 * GiB
RAM = 2048 * GiB
PEERS = Path(__file__).parent / "peers"
TARGET_WORKERS = 10_000
TARGET_P99_MS = 20.0


@dataclass(frozen=True)
class Scenario:
    name: str
    model: str  # key of the models written for the run
    strategy: str = "spread"
    accumulate: bool = False  # successive replicas: each decision sees the previous claims


CLUSTERS = [(0, False), (5, False), (0, True)]  # (GPUs full per worker, uneven memory in use)
SCENARIOS = [
    Scenario("8B single GPU", "8b"),
    Scenario("70B F16 2 GPUs", "70b"),
    Scenario("405B RPC", "405b"),
    Scenario("binpack 8B", "8b", "binpack", accumulate=True),
    Scenario("spread 8B", "8b", "spread", accumulate=True),
]


def worker_views(workers: int, full_gpus: int, uneven: bool = False) -> tuple[WorkerView, ...]:
    in_use = random.Random(0)
    views = []
    for w in range(workers):
        name = f"w{w:04d}"
        gpus = tuple(
            DeviceView(
                f"{name}:cuda:{i}",
                w,
                name,
                i,
                "cuda",
                "NVIDIA H100 80GB HBM3",
                GPU_MEMORY,
                GiB,
                in_use.randrange(0, 2048) * MiB if uneven else 0,
                GPU_MEMORY - GiB if i < full_gpus else 0,
                simulated=True,
            )
            for i in range(8)
        )
        cpu = DeviceView(f"{name}:cpu:0", w, name, 0, "cpu", "CPU", RAM, 2 * GiB, 0, 0, simulated=True)
        views.append(WorkerView(w, name, "ready", {"gpu-vendor": "nvidia"}, gpus, cpu))
    return tuple(views)


def build_snapshot(views: tuple[WorkerView, ...]) -> tuple[ClusterSnapshot, float]:
    """The snapshot, and the fastest of 3 builds in seconds (what one scheduling pass pays once)."""
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        snapshot = ClusterSnapshot(views)
        timings.append(time.perf_counter() - started)
    return snapshot, min(timings)


def models(folder: Path) -> dict[str, tuple[Path, Estimator]]:
    shapes = {"8b": ("llama-3.1-8b", "q8_0"), "70b": ("llama-3.1-70b", "f16"), "405b": ("llama-3.1-405b", "f16")}
    result = {}
    for key, (name, weights) in shapes.items():
        path = write_model(folder / f"{name}.gguf", preset(name), weights, sparse=True)  # type: ignore[arg-type]
        result[key] = (path, Estimator(model_info(read_model(path)), RunConfig(ctx_size=8192)))
    return result


def time_decisions(
    scenario: Scenario, snapshot: ClusterSnapshot, estimator: Estimator, decisions: int
) -> tuple[list[float], str]:
    seconds = []
    outcome = ""
    for number in range(decisions):
        request = Request(
            instance_id=number, instance_name=f"i{number}", estimator=estimator, placement_strategy=scenario.strategy
        )
        started = time.perf_counter()
        result = schedule(request, snapshot)
        seconds.append(time.perf_counter() - started)
        if isinstance(result, Placement):
            outcome = result.describe()
            if scenario.accumulate:
                snapshot = snapshot.with_claim(result.all_claims())
        else:
            outcome = result.message
    return seconds, outcome


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def peer_python() -> str | None:
    script = PEERS / "gpustack_env.sh"
    if not script.exists():
        return None
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    lines = result.stdout.strip().splitlines()
    return lines[-1] if result.returncode == 0 and lines else None


def peer_time(python: str, workers: int, full: int, model: Path, strategy: str, decisions: int) -> dict[str, Any]:
    scenario = {
        "workers": workers,
        "gpus_per_worker": 8,
        "gpu_memory": GPU_MEMORY,
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "full_gpus_per_worker": full,
        "ram": RAM,
        "decisions": decisions,
        "model": {"path": str(model), "replicas": 1, "placement_strategy": strategy, "backend": "llama.cpp"},
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(scenario, handle)
    try:
        result = subprocess.run(
            [python, str(PEERS / "gpustack_scheduler.py"), handle.name],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": "timed out after 30 minutes"}
    lines = result.stdout.strip().splitlines()
    try:
        parsed: dict[str, Any] = json.loads(lines[-1])
        return parsed
    except (IndexError, ValueError):
        return {"ok": False, "error": (result.stderr or result.stdout)[-500:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--decisions", type=int, default=50)
    parser.add_argument("--peer", action="store_true", help="also time GPUStack 2.3.0's scheduler")
    parser.add_argument("--peer-max-workers", type=int, default=1000)
    parser.add_argument("--out", default="scheduler.json")
    options = parser.parse_args()
    sizes = [int(s) for s in options.sizes.split(",")]
    python = peer_python() if options.peer else None
    if options.peer and python is None:
        console.print("[yellow]GPUStack 2.3.0 peer unavailable (benchmarks/peers/gpustack_env.sh failed)[/]")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        files = models(Path(tmp))
        for size in sizes:
            for full, uneven in CLUSTERS:
                state = f"{full}/8 full" + (", uneven" if uneven else "")
                snapshot, build_seconds = build_snapshot(worker_views(size, full, uneven))
                console.print(f"{size} workers, {state}: snapshot built in {build_seconds * 1000:.1f} ms")
                for scenario in SCENARIOS:
                    path, estimator = files[scenario.model]
                    seconds, outcome = time_decisions(scenario, snapshot, estimator, options.decisions)
                    row: dict[str, Any] = {
                        "workers": size,
                        "gpus": size * 8,
                        "cluster": state,
                        "snapshot_ms": build_seconds * 1000,
                        "scenario": scenario.name,
                        "p50_ms": percentile(seconds, 0.5) * 1000,
                        "p99_ms": percentile(seconds, 0.99) * 1000,
                        "decisions": len(seconds),
                        "outcome": outcome,
                    }
                    # The peer runs gguf-parser once per worker and combination: at 1,000 workers one RPC
                    # decision would take far longer than this benchmark should.
                    peer_limit = 100 if scenario.model == "405b" else options.peer_max_workers
                    if python and not scenario.accumulate and not uneven and size <= peer_limit:
                        peer = peer_time(python, size, full, path, scenario.strategy, 1 if size >= 1000 else 3)
                        row["peer"] = peer
                        if peer.get("ok"):
                            row["peer_median_ms"] = statistics.median(peer["seconds"]) * 1000
                            if peer.get("candidate"):  # a ratio only where both placed the model
                                row["ratio"] = row["peer_median_ms"] / row["p50_ms"]
                    rows.append(row)
                    console.print(
                        f"{size} workers, {state}, {scenario.name}: p50 {row['p50_ms']:.2f} ms, "
                        f"p99 {row['p99_ms']:.2f} ms ({outcome[:80]})"
                    )
    report(rows, Path(options.out))


def report(rows: list[dict[str, Any]], out: Path) -> None:
    table = Table(
        "workers × 8 GPUs",
        "cluster",
        "scenario",
        "gpufleet p50 ms",
        "gpufleet p99 ms",
        "GPUStack 2.3.0 ms",
        "ratio",
        "placement",
        "snapshot ms",
        title=f"One placement decision (target at {TARGET_WORKERS:,} workers: p99 ≤ {TARGET_P99_MS:.0f} ms)",
    )
    for row in rows:
        peer = f"{row['peer_median_ms']:,.0f}" if "peer_median_ms" in row else ("failed" if "peer" in row else "-")
        ratio = f"{row['ratio']:,.0f}×" if "ratio" in row else "-"
        table.add_row(
            str(row["workers"]),
            row["cluster"],
            row["scenario"],
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            peer,
            ratio,
            row["outcome"][:70],
            f"{row['snapshot_ms']:.1f}",
        )
    console.print(table)
    for size in sorted({r["workers"] for r in rows}):
        worst = max(r["p99_ms"] for r in rows if r["workers"] == size)
        target = f" (target ≤ {TARGET_P99_MS:.0f} ms)" if size == TARGET_WORKERS else ""
        console.print(f"worst p99 at {size:,} workers: {worst:.2f} ms{target}")
    out.write_text(json.dumps(rows, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
