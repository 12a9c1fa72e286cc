"""Gateway overhead: gpufleet's ``/v1`` in front of a constant-time upstream, against calling the
upstream directly and against LiteLLM's proxy in front of the same upstream, in the same run.

- The upstream (``benchmarks/gateway_upstream.py``) answers at once, so what is measured is what
  stands in front of it. It is registered in gpufleet as a running instance the way a worker
  registers one: a worker registered with the cluster token, heartbeating, and the instance moved
  to ``running`` through the worker's own transition route (no SQL).
- LiteLLM's proxy (``litellm[proxy]`` in a side virtualenv, ``benchmarks/peers/litellm_env.sh``)
  is pointed at the same upstream with a master key, telemetry and the cost-map download off.
- A bare proxy (``benchmarks/gateway_bare_proxy.py``: the same uvicorn and aiohttp, and nothing
  else) shows what a second HTTP hop in Python costs by itself, so gpufleet's own share is visible.
- The load comes from a separate process (``benchmarks/gateway_load.py``, aiohttp on uvloop), the
  same for every target. Everything shares this machine's cores: ratios matter more than absolute rates.

Scenarios: sequential requests (added latency p50/p99 = target − direct), non-streaming at
8/32/128 concurrent clients (requests/s), streaming 100-chunk answers at 8/32 (chunks/s). Every
scenario is bounded in requests and seconds.

    .venv/bin/python -m benchmarks.gateway [--quick] [--no-litellm]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from benchmarks.lifecycle import wait_http
from gpufleet.common.net import free_port
from testkit.synthetic import preset, write_model

console = Console(width=220)
PASSWORD = "benchmark-password-1"
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "gateway.json"
LITELLM_KEY = "sk-benchmark-master-key"
CHUNKS = 100
GiB = 1 << 30
QUIET = {"DO_NOT_TRACK": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **QUIET, **(env or {})})


class Gpufleet:
    """A ``gpufleet start --disable-worker`` with the upstream registered as a running instance."""

    def __init__(self, work: Path, upstream_port: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data = work / "gpufleet"
        self.process = start(
            [
                *(sys.executable, "-m", "gpufleet", "start", "--disable-worker", "--host", "127.0.0.1"),
                *("--port", str(self.port), "--data-dir", str(data), "--bootstrap-password", PASSWORD),
                *("--heartbeat-interval", "2", "--log-level", "warning"),
            ],
            work / "gpufleet.log",
        )
        wait_http(f"{self.url}/healthz", 60, self.process)
        self.http = httpx.Client(base_url=self.url, trust_env=False, timeout=30)
        token = self.http.post("/api/auth/login", json={"username": "admin", "password": PASSWORD}).json()
        admin = {"Authorization": f"Bearer {token['access_token']}"}
        self.key = self.http.post("/api/api-keys", json={"name": "bench"}, headers=admin).json()["key"]
        cluster = (data / "token").read_text().strip()
        registered = self.http.post(
            "/api/workers/register",
            json=_registration(upstream_port),
            headers={"Authorization": f"Bearer {cluster}"},
        )
        registered.raise_for_status()
        self.worker = {"Authorization": f"Bearer {registered.json()['credential']}"}
        self.worker_id = registered.json()["worker"]["id"]
        self._beating = True
        threading.Thread(target=self._heartbeat, daemon=True).start()
        model = write_model(data / "models" / "bench.gguf", preset("llama-tiny"))
        # The upstream answers any number of requests at once: the gateway's per-instance limit (by
        # default the engine's 4 slots, the rest queued) is set above the most clients sent here.
        body = {
            "name": "bench",
            "source": "local_path",
            "local_path": str(model),
            "cpu_offloading": True,
            "max_concurrent_requests": 1000,
        }
        created = self.http.post("/api/models", json=body, headers=admin)
        created.raise_for_status()
        instance = self._placed(created.json()["id"], admin)
        version = instance["version"]
        for state, fields in (("starting", {}), ("running", {"port": upstream_port})):
            moved = self.http.post(
                f"/api/model-instances/{instance['id']}/transition",
                json={"expected_version": version, "state": state, **fields},
                headers=self.worker,
            )
            moved.raise_for_status()
            version = moved.json()["version"]

    def _placed(self, model_id: int, admin: dict[str, str]) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listed = self.http.get("/api/model-instances", params={"model_id": model_id}, headers=admin).json()
            if listed and listed[0]["state"] == "scheduled":
                found: dict[str, Any] = listed[0]
                return found
            time.sleep(0.1)
        raise RuntimeError(f"the benchmark model was not placed on the benchmark worker: {listed}")

    def _heartbeat(self) -> None:
        with httpx.Client(base_url=self.url, trust_env=False, timeout=10) as beat:
            while self._beating:
                try:
                    beat.post(f"/api/workers/{self.worker_id}/heartbeat", json={}, headers=self.worker)
                except httpx.HTTPError as exc:  # the server is stopping, or overloaded for a moment
                    console.print(f"[yellow]heartbeat failed:[/] {exc}")
                time.sleep(1)

    def stop(self) -> None:
        self._beating = False
        time.sleep(1.2)  # the last heartbeat is out
        self.process.terminate()
        self.process.wait(30)


def _registration(port: int) -> dict[str, Any]:
    cpu = {"index": 0, "type": "cpu", "vendor": "bench", "name": "CPU", "memory_total": 64 * GiB}
    return {
        "name": "bench-worker",
        "ip": "127.0.0.1",
        "port": port,  # the upstream answers /healthz, as a worker's port would
        "system_reserved": {"ram": 0, "vram": 0},
        "status": {
            "hostname": "bench",
            "os": "linux",
            "arch": platform.machine(),
            "cpu_cores": 16,
            "memory_total": 64 * GiB,
            "memory_used": 0,
            "devices": [{**cpu, "memory_used": 0, "cores": 16}],
            "gpufleet_version": "benchmark",
        },
    }


def start_litellm(work: Path, upstream_port: int) -> tuple[subprocess.Popen[bytes], str]:
    bin_dir = (
        subprocess.run(
            ["bash", str(ROOT / "benchmarks" / "peers" / "litellm_env.sh")], check=True, capture_output=True, text=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    config = work / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: bench\n"
        "    litellm_params:\n"
        "      model: openai/bench\n"
        f"      api_base: http://127.0.0.1:{upstream_port}/v1\n"
        "      api_key: unused\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n"
    )
    port = free_port()
    process = start(
        [f"{bin_dir}/litellm", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
        work / "litellm.log",
        {"LITELLM_TELEMETRY": "False", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"},
    )
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", 180, process)
    return process, f"http://127.0.0.1:{port}"


def load(url: str, key: str, concurrency: int, requests: int, stream: bool = False) -> dict[str, Any]:
    command = [
        *(sys.executable, "-m", "benchmarks.gateway_load", "--url", f"{url}/v1/chat/completions"),
        *("--key", key, "--concurrency", str(concurrency), "--requests", str(requests), "--max-seconds", "30"),
    ]
    if stream:
        command.append("--stream")
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT, timeout=120)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def scenarios(quick: bool) -> list[tuple[str, int, int, bool]]:
    """(name, concurrency, requests, stream)."""
    scale = 4 if quick else 1
    return [
        ("sequential", 1, 1000 // scale, False),
        ("8 concurrent", 8, 3000 // scale, False),
        ("32 concurrent", 32, 4000 // scale, False),
        ("128 concurrent", 128, 4000 // scale, False),
        ("stream, 8 concurrent", 8, 400 // scale, True),
        ("stream, 32 concurrent", 32, 400 // scale, True),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the requests")
    parser.add_argument("--no-litellm", action="store_true", help="leave the LiteLLM peer out")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gpufleet-gateway-bench-") as tmp:
        work = Path(tmp)
        upstream_port = free_port()
        upstream = start(
            [
                sys.executable,
                "-m",
                "benchmarks.gateway_upstream",
                "--port",
                str(upstream_port),
                "--chunks",
                str(CHUNKS),
            ],
            work / "upstream.log",
        )
        processes = [upstream]
        gpufleet: Gpufleet | None = None
        try:
            wait_http(f"http://127.0.0.1:{upstream_port}/healthz", 30, upstream)
            bare_port = free_port()
            bare = start(
                [
                    *(sys.executable, "-m", "benchmarks.gateway_bare_proxy", "--port", str(bare_port)),
                    *("--upstream", f"http://127.0.0.1:{upstream_port}"),
                ],
                work / "bare-proxy.log",
            )
            processes.append(bare)
            wait_http(f"http://127.0.0.1:{bare_port}/healthz", 30, bare)
            gpufleet = Gpufleet(work, upstream_port)
            targets = {
                "direct": (f"http://127.0.0.1:{upstream_port}", ""),
                "bare-proxy": (f"http://127.0.0.1:{bare_port}", ""),
                "gpufleet": (gpufleet.url, gpufleet.key),
            }
            if not args.no_litellm:
                litellm, litellm_url = start_litellm(work, upstream_port)
                processes.append(litellm)
                targets["litellm"] = (litellm_url, LITELLM_KEY)
            rows = []
            for name, concurrency, requests, stream in scenarios(args.quick):
                row: dict[str, Any] = {"scenario": name, "concurrency": concurrency, "stream": stream}
                for target, (url, key) in targets.items():
                    row[target] = load(url, key, concurrency, requests, stream)
                    console.print(f"{name:>24} {target:>9}: {_short(row[target])}")
                rows.append(row)
        finally:
            if gpufleet is not None:
                gpufleet.stop()
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(30)
    report(rows, list(targets))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"chunks_per_stream": CHUNKS, "rows": rows}, indent=2) + "\n")
    console.print(f"wrote {args.out}")


def _short(result: dict[str, Any]) -> str:
    rate = f"{result['chunks_per_s']:.0f} chunks/s" if result.get("chunks_per_s") else f"{result['rps']:.0f} req/s"
    return f"{rate}, p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, {result['errors']} errors"


def report(rows: list[dict[str, Any]], targets: list[str]) -> None:
    table = Table(title=f"gateway overhead (upstream answers at once; streams of {CHUNKS} chunks)")
    table.add_column("scenario")
    for target in targets:
        table.add_column(f"{target} rate", justify="right")
        table.add_column(f"{target} p50/p99 ms", justify="right")
    table.add_column("gpufleet added p50/p99 ms", justify="right")
    table.add_column("gpufleet / direct", justify="right")
    table.add_column("gpufleet / bare proxy", justify="right")
    if "litellm" in targets:
        table.add_column("gpufleet / litellm", justify="right")
    for row in rows:
        cells = [row["scenario"]]
        key = "chunks_per_s" if row["stream"] else "rps"
        for target in targets:
            result = row[target]
            cells += [f"{result[key]:.0f}", f"{result['p50_ms']:.2f} / {result['p99_ms']:.2f}"]
        direct, ours = row["direct"], row["gpufleet"]
        cells.append(f"{ours['p50_ms'] - direct['p50_ms']:.2f} / {ours['p99_ms'] - direct['p99_ms']:.2f}")
        cells.append(f"{ours[key] / direct[key]:.2f}")
        cells.append(f"{ours[key] / row['bare-proxy'][key]:.2f}")
        if "litellm" in targets:
            cells.append(f"{ours[key] / row['litellm'][key]:.1f}×")
        table.add_row(*cells)
    console.print(table)


if __name__ == "__main__":
    main()
