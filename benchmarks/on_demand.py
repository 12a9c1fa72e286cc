"""On-demand models: cold-start latency and a swap workload, against the bare engine doing the same.

One ``gpufleet start`` whose embedded worker offers its CPU with room for one model of the run
(``--device-inventory`` with ``"host": true``), and two models deployed on demand
(``min_replicas 0, max_replicas 1``):

- **cold start**: a streamed chat request for a model with nothing loaded, from sending it to its
  first token (gpufleet: the request asks for a load, the scheduler places it, the worker starts
  the engine, the request waits and is forwarded). The reference is the bare engine doing the
  least it can: the same llama-server command line started by hand, polled until ``/health``
  answers, then the same request to it. Target: overhead ≤ 0.5 s.
- **swap**: requests alternating between the two models, one at a time, on the worker that holds
  one: each evicts the other and loads its own (request → complete answer). The reference is what
  llama-swap does on one host, done here by hand with the same command lines: stop the running
  llama-server, start the other, wait for ``/health``, send the request. (llama-swap itself is a Go
  binary published on GitHub releases, not on the package registries this machine reaches.)

    .venv/bin/python -m benchmarks.on_demand [--trials 5] [--swaps 10] [--out benchmarks/results/on_demand.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console
from rich.table import Table

from benchmarks.lifecycle import Gpufleet, wait_http
from gpufleet.common.net import free_port
from gpufleet.engines import engine_for
from gpufleet.estimate.config import Placement as LayerPlacement
from gpufleet.schemas.models import ModelSpec
from gpufleet.worker.engines.binaries import find_or_build
from testkit.synthetic import preset, scaled, write_model

console = Console()
MESSAGES = [{"role": "user", "content": "Say something."}]
SHAPE = scaled(preset("llama-3.1-8b"), n_layer=8, n_embd=512, n_ff=1536, n_head=8, n_head_kv=4, n_vocab=8192)


def ram_of(path: Path) -> int:
    spec = ModelSpec(name="probe", source="local_path", local_path=str(path), cpu_offloading=True)
    return engine_for(None).estimator(spec).estimate(LayerPlacement(gpus=0)).ram


def first_token(url: str, model: str, key: str | None) -> float:
    """Seconds from sending a streamed request to its first content chunk."""
    started = time.perf_counter()
    body = {"model": model, "messages": MESSAGES, "max_tokens": 4, "stream": True, "ignore_eos": True}
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with (
        httpx.Client(trust_env=False, timeout=300) as http,
        http.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as response,
    ):
        response.raise_for_status()
        elapsed = None
        for line in response.iter_lines():  # all of it, so the engine finishes this request
            if elapsed is None and line.startswith("data: ") and '"content"' in line:
                elapsed = time.perf_counter() - started
    if elapsed is None:
        raise RuntimeError(f"{model}: no token in the answer")
    return elapsed


def answer(url: str, model: str, key: str | None) -> float:
    """Seconds from sending a request to its complete answer (8 tokens)."""
    started = time.perf_counter()
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": model, "messages": MESSAGES, "max_tokens": 8, "ignore_eos": True},
        headers={"Authorization": f"Bearer {key}"} if key else {},
        timeout=300,
        trust_env=False,
    )
    response.raise_for_status()
    return time.perf_counter() - started


class Fleet(Gpufleet):
    """gpufleet whose embedded worker offers ``room`` bytes of its CPU (one model of the run, not two)."""

    def __init__(self, root: Path, llama_server: Path, models: Path, room: int) -> None:
        inventory = root / "cpu.json"
        inventory.write_text(json.dumps({"cpu": {"cores": os.cpu_count() or 2, "memory": room, "host": True}}))
        extra = ("--device-inventory", str(inventory), "--system-reserved", '{"ram": 0, "vram": 0}')
        super().__init__(root, llama_server, [models], extra)

    def deploy_on_demand(self, name: str, path: Path) -> int:
        body = {"name": name, "source": "local_path", "local_path": str(path), "cpu_offloading": True}
        created = self.api.post("/api/models", json={**body, "min_replicas": 0, "max_replicas": 1})
        created.raise_for_status()
        return int(created.json()["id"])

    def unload(self, model_id: int) -> None:
        """Scale to 0 and wait until no instance (and no engine) is left."""
        self.api.patch(f"/api/models/{model_id}", json={"replicas": 0}).raise_for_status()
        deadline = time.monotonic() + 60
        while self.api.get("/api/model-instances", params={"model_id": model_id}).json():
            if time.monotonic() > deadline:
                raise RuntimeError(f"model {model_id} still has instances 60 s after scaling to 0")
            time.sleep(0.02)

    def remove_all(self) -> None:
        """Delete every deployment and wait until their engines are gone (a stopped gpufleet keeps
        engines running, to be adopted by its next start)."""
        for model in self.api.get("/api/models").json():
            self.api.delete(f"/api/models/{model['id']}")
        deadline = time.monotonic() + 60
        while self.api.get("/api/model-instances").json() and time.monotonic() < deadline:
            time.sleep(0.05)

    def engine_command(self, model_id: int) -> list[str]:
        [instance] = self.api.get("/api/model-instances", params={"model_id": model_id}).json()
        command: list[str] = psutil.Process(instance["pid"]).cmdline()
        return command


class BareEngine:
    """One llama-server at a time on one port, started by hand: what a single-host swapper does."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, command: list[str]) -> None:
        self.stop()
        command = list(command)
        command[command.index("--port") + 1] = str(self.port)
        command[command.index("--host") + 1] = "127.0.0.1"
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"{self.url}/health", 300, self.process)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)
            self.process = None


def cold_starts(fleet: Fleet, model_id: int, name: str, trials: int) -> dict[str, Any]:
    gpufleet: list[float] = []
    bare: list[float] = []
    bare_engine = BareEngine()
    try:
        for _ in range(trials):
            fleet.unload(model_id)
            gpufleet.append(first_token(fleet.url, name, fleet.key))
            command = fleet.engine_command(model_id)
            fleet.unload(model_id)  # the bare engine gets the machine to itself too
            started = time.perf_counter()
            bare_engine.start(command)
            ready = time.perf_counter() - started
            bare.append(ready + first_token(bare_engine.url, name, None))
            bare_engine.stop()
    finally:
        bare_engine.stop()
    return {
        "gpufleet_s": gpufleet,
        "bare_s": bare,
        "gpufleet_median_s": statistics.median(gpufleet),
        "bare_median_s": statistics.median(bare),
        "overhead_s": statistics.median(gpufleet) - statistics.median(bare),
        "ratio": statistics.median(gpufleet) / statistics.median(bare),
    }


def swaps(fleet: Fleet, models: dict[str, int], rounds: int) -> dict[str, Any]:
    names = list(models)
    commands: dict[str, list[str]] = {}
    for name in names:  # each once, to learn its engine command (and leave the last one loaded)
        answer(fleet.url, name, fleet.key)
        commands[name] = fleet.engine_command(models[name])
    gpufleet = [answer(fleet.url, names[n % 2], fleet.key) for n in range(rounds)]  # names[0] evicts names[1] …
    for model_id in models.values():
        fleet.unload(model_id)
    bare: list[float] = []
    engine = BareEngine()
    try:
        for n in range(rounds):
            name = names[n % 2]
            started = time.perf_counter()
            engine.start(commands[name])  # stops the other first
            answer(engine.url, name, None)
            bare.append(time.perf_counter() - started)
    finally:
        engine.stop()
    return {
        "gpufleet_s": gpufleet,
        "bare_s": bare,
        "gpufleet_median_s": statistics.median(gpufleet),
        "bare_median_s": statistics.median(bare),
        "ratio": statistics.median(gpufleet) / statistics.median(bare),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5, help="cold starts measured")
    parser.add_argument("--swaps", type=int, default=10, help="alternating requests in the swap workload")
    parser.add_argument("--out", default="benchmarks/results/on_demand.json")
    options = parser.parse_args()
    binaries = find_or_build()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = root / "models"
        paths = {name: write_model(models / f"{name}.gguf", SHAPE) for name in ("swap-a", "swap-b")}
        room = int(ram_of(paths["swap-a"]) * 1.5)  # one model fits, two do not
        model_bytes = paths["swap-a"].stat().st_size
        fleet = Fleet(root, binaries.server, models, room)
        try:
            ids = {name: fleet.deploy_on_demand(name, path) for name, path in paths.items()}
            cold = cold_starts(fleet, ids["swap-a"], "swap-a", options.trials)
            swap = swaps(fleet, ids, options.swaps)
        finally:
            fleet.remove_all()
            fleet.stop()
    result = {"engine": binaries.version, "model_bytes": model_bytes, "cold": cold, "swap": swap}
    report(result, Path(options.out))


def report(result: dict[str, Any], out: Path) -> None:
    cold, swap = result["cold"], result["swap"]
    table = Table(
        "workload",
        "gpufleet (median s)",
        "bare engine (median s)",
        "gpufleet − bare (s)",
        "ratio",
        title=f"On demand (target: cold-start overhead ≤ 0.5 s); llama.cpp {result['engine']}",
    )
    table.add_row(
        "cold start: request → first token",
        f"{cold['gpufleet_median_s']:.2f}",
        f"{cold['bare_median_s']:.2f}",
        f"{cold['overhead_s']:.2f}",
        f"{cold['ratio']:.2f}",
    )
    table.add_row(
        "swap: request → answer, evicting the other model",
        f"{swap['gpufleet_median_s']:.2f}",
        f"{swap['bare_median_s']:.2f}",
        f"{swap['gpufleet_median_s'] - swap['bare_median_s']:.2f}",
        f"{swap['ratio']:.2f}",
    )
    console.print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    console.print(f"written to {out}")


if __name__ == "__main__":
    main()
