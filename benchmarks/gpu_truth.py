"""On a real NVIDIA GPU: detection, placement and the memory estimate against what CUDA allocates.

Run by ``benchmarks/gpu_truth.sh`` on a lent GPU machine (issue 16), after the CUDA llama.cpp was
installed through ``gpufleet engines install``. One ``gpufleet start`` with its embedded worker
(real NVML detection, no ``--device-inventory``), three generated models of different
architectures deployed one after the other through the API, placed by the scheduler:

- ``llama-1b-q8``: Llama-3.2-1B's shape, q8_0; ``qwen2-0.5b-f16``: Qwen2.5-0.5B's, f16: whole on the GPU;
- ``qwen3-8b-q4``: Qwen3-8B's shape, q4_0, which does not fit in the room left: the worker is
  started with ``--system-reserved`` so that the GPU offers the two small models and about half of
  this one, and the scheduler places it partially (``--n-gpu-layers`` below the total, the rest
  on the CPU): the partial-offload and CPU+GPU cells.

For each instance: the stored claim (the scheduler's estimate), the estimator's breakdown for the
same placement (weights, KV, compute, overhead per device), what llama.cpp says it allocated
(``CUDA0 model/KV/compute buffer size`` lines of the engine's log, read through the API), what
NVML shows the process using, and the host's resident memory. Then a 128-token chat through the
gateway with an API key: tokens/s. Writes ``gpu_truth.json``, the engine logs, the gpufleet log
and the raw NVML answers under ``--out``; prints the table (cell, measured, estimate, error %).

    python3 -m benchmarks.gpu_truth nvml --out OUT/nvml.json
    python3 -m benchmarks.gpu_truth run --out OUT [--cpu-dry-run]

``--cpu-dry-run`` runs the same flow on a machine without a GPU (small models, CPU placement) so
the script is known to work before device time is spent on it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console
from rich.table import Table

from benchmarks.lifecycle import wait_http
from gpufleet.common.net import free_port
from gpufleet.engines import engine_for
from gpufleet.estimate.config import Placement
from gpufleet.schemas.models import ModelSpec
from testkit.synthetic import ModelShape, preset, scaled, write_model

GiB = 1024**3
MiB = 1024**2
PASSWORD = "gpu-truth-password-1"
CHAT_TOKENS = 128
console = Console(highlight=False, soft_wrap=True, width=200)
BUFFER_LINE = re.compile(r"\b([A-Za-z0-9_]+)\s+(model|KV|compute|output|RS) buffer size\s*=\s*([\d.]+) MiB")
LLAMA_1B = scaled(preset("llama-3.1-8b"), n_layer=16, n_embd=2048, n_ff=8192, n_head=32, tied_embeddings=True)


@dataclass(frozen=True)
class Case:
    name: str
    shape: ModelShape
    weight_type: str
    role: str  # full | partial


CASES = [
    Case("llama-1b-q8", LLAMA_1B, "q8_0", "full"),
    Case("qwen2-0.5b-f16", preset("qwen2.5-0.5b"), "f16", "full"),
    Case("qwen3-8b-q4", preset("qwen3-8b"), "q4_0", "partial"),
]
TINY = {"n_layer": 4, "n_embd": 256, "n_ff": 512, "n_head": 4, "n_head_kv": 2, "n_vocab": 4096, "head_dim": None}


def nvml_answers() -> dict[str, Any]:
    """NVML's raw answers for every GPU (the fields the detector reads), for a test fixture."""
    import pynvml

    pynvml.nvmlInit()
    try:
        answers: dict[str, Any] = {"driver": _text(pynvml.nvmlSystemGetDriverVersion()), "devices": []}
        try:
            answers["cuda_driver_version"] = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        except (pynvml.NVMLError, AttributeError) as exc:
            answers["cuda_driver_version"] = f"error: {exc}"
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            device: dict[str, Any] = {
                "index": index,
                "name": _text(pynvml.nvmlDeviceGetName(handle)),
                "uuid": _text(pynvml.nvmlDeviceGetUUID(handle)),
                "memory": {"total": memory.total, "used": memory.used, "free": memory.free},
                "compute_capability": list(pynvml.nvmlDeviceGetCudaComputeCapability(handle)),
            }
            for key, call in (
                ("memory_v2", lambda h: pynvml.nvmlDeviceGetMemoryInfo(h, version=pynvml.nvmlMemory_v2)),
                ("utilization", pynvml.nvmlDeviceGetUtilizationRates),
                ("temperature", lambda h: pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)),
                ("processes", pynvml.nvmlDeviceGetComputeRunningProcesses),
            ):
                try:
                    value = call(handle)
                    device[key] = _plain(value)
                except (pynvml.NVMLError, AttributeError, TypeError) as exc:
                    device[key] = f"error: {exc}"
            answers["devices"].append(device)
        return answers
    finally:
        pynvml.nvmlShutdown()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _plain(value: Any) -> Any:
    """A ctypes structure (or list of them) as a dict, e.g. nvmlMemory_v2 → {"total": …}."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    fields = getattr(value, "_fields_", None)
    if fields:
        return {name: _plain(getattr(value, name)) for name, *_ in fields}
    return value if isinstance(value, int | float | str | type(None)) else str(value)


def gpu_processes() -> dict[int, int]:
    """Bytes of GPU memory per process id, from NVML (all GPUs)."""
    import pynvml

    pynvml.nvmlInit()
    try:
        used: dict[int, int] = {}
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            for process in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                used[process.pid] = used.get(process.pid, 0) + (process.usedGpuMemory or 0)
        return used
    finally:
        pynvml.nvmlShutdown()


def _write(job: tuple[str, ModelShape, str]) -> str:
    path, shape, weight_type = job
    write_model(Path(path), shape, weight_type)  # type: ignore[arg-type]
    return path


def generate(cases: list[Case], models: Path) -> dict[str, Path]:
    """The GGUF of every case (kept between runs: the directory persists while the machine is warm)."""
    paths = {case.name: models / f"{case.name}.gguf" for case in cases}
    jobs = [(str(paths[c.name]), c.shape, c.weight_type) for c in cases if not paths[c.name].exists()]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        list(pool.map(_write, jobs))
    console.print(f"generated {len(jobs)} model(s) in {time.perf_counter() - started:.1f} s")
    return paths


def spec_for(name: str, path: Path) -> ModelSpec:
    return ModelSpec(name=name, source="local_path", local_path=str(path), cpu_offloading=True)


def estimate(name: str, path: Path, gpus: int, gpu_layers: int | None) -> dict[str, Any]:
    """The estimator's breakdown for one placement (as the scheduler computes it)."""
    result = engine_for(None).estimator(spec_for(name, path)).estimate(Placement(gpus=gpus, gpu_layers=gpu_layers))
    as_json: dict[str, Any] = result.as_json()
    return as_json


class Fleet:
    """``gpufleet start`` with its embedded worker on real detection."""

    def __init__(self, root: Path, out: Path, models: Path, reserved_vram_gib: float | None) -> None:
        self.port, worker_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        extra = ["--system-reserved", json.dumps({"ram": 2, "vram": reserved_vram_gib})] if reserved_vram_gib else []
        command = [
            *(sys.executable, "-m", "gpufleet", "start", "--host", "127.0.0.1", "--port", str(self.port)),
            *("--worker-port", str(worker_port), "--data-dir", str(root / "data"), "--worker-name", "gpu-truth"),
            *("--bootstrap-password", PASSWORD, "--allowed-model-dirs", str(models)),
            *("--heartbeat-interval", "1", "--labels", "bench=gpu-truth", *extra),
        ]
        console.print("starting: " + " ".join(command))
        self.process = subprocess.Popen(
            command,
            stdout=(out / "gpufleet.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_http(f"{self.url}/healthz", 120, self.process)
        login = httpx.post(
            f"{self.url}/api/auth/login", json={"username": "admin", "password": PASSWORD}, trust_env=False
        )
        login.raise_for_status()
        token = login.json()["access_token"]
        self.api = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, trust_env=False, timeout=60
        )
        created = self.api.post("/api/api-keys", json={"name": "gpu-truth"})
        created.raise_for_status()
        self.key = created.json()["key"]
        deadline = time.monotonic() + 60
        while not any(w["state"] == "ready" for w in self.api.get("/api/workers").json()):
            if time.monotonic() > deadline:
                raise RuntimeError("the embedded worker did not become ready within 60 s")
            time.sleep(0.1)

    def deploy(self, name: str, path: Path, timeout: float = 150) -> dict[str, Any]:
        """The running instance of a new deployment, and the seconds it took."""
        started = time.perf_counter()
        created = self.api.post("/api/models", json=spec_for(name, path).model_dump(mode="json", exclude_unset=True))
        if created.status_code >= 400:
            raise RuntimeError(f"deploying {name}: {created.status_code} {created.text}")
        model_id = created.json()["id"]
        while True:
            listed = self.api.get("/api/model-instances", params={"model_id": model_id}).json()
            if listed and listed[0]["state"] == "running":
                return {**listed[0], "model_id": model_id, "deploy_s": time.perf_counter() - started}
            if listed and listed[0]["state"] == "error":
                raise RuntimeError(f"{name}: {listed[0]['state_message']}")
            if time.perf_counter() - started > timeout:
                model = self.api.get(f"/api/models/{model_id}").json()
                raise RuntimeError(f"{name} did not run within {timeout} s: {listed or model}")
            time.sleep(0.1)

    def log(self, instance_id: int) -> str:
        response = self.api.get(f"/api/model-instances/{instance_id}/logs", params={"tail": 10_000})
        response.raise_for_status()
        return response.text

    def chat(self, name: str) -> dict[str, Any]:
        started = time.perf_counter()
        response = httpx.post(
            f"{self.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {self.key}"},
            json={
                "model": name,
                "messages": [{"role": "user", "content": "Write a long story about a GPU."}],
                "max_tokens": CHAT_TOKENS,
                "ignore_eos": True,
            },
            timeout=300,
            trust_env=False,
        )
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        body = response.json()
        tokens = int(body["usage"]["completion_tokens"])
        timings = body.get("timings") or {}
        return {
            "completion_tokens": tokens,
            "seconds": elapsed,
            "tokens_per_s": tokens / elapsed,
            "engine_predicted_per_s": timings.get("predicted_per_second"),
            "engine_prompt_per_s": timings.get("prompt_per_second"),
        }

    def stop(self) -> None:
        for model in self.api.get("/api/models").json():
            self.api.delete(f"/api/models/{model['id']}")
        deadline = time.monotonic() + 60
        while self.api.get("/api/model-instances").json() and time.monotonic() < deadline:
            time.sleep(0.2)
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(30)


def buffers(log: str) -> dict[str, dict[str, float]]:
    """llama.cpp's ``<device> <kind> buffer size = N MiB`` lines: bytes per device and kind (summed)."""
    found: dict[str, dict[str, float]] = {}
    for device, kind, mib in BUFFER_LINE.findall(log):
        per_device = found.setdefault(device, {})
        per_device[kind] = per_device.get(kind, 0.0) + float(mib) * MiB
    return found


def host_rss(pid: int | None) -> int | None:
    try:
        return int(psutil.Process(pid).memory_info().rss) if pid else None
    except psutil.Error:
        return None


def measure(fleet: Fleet, case: Case, path: Path, instance: dict[str, Any], out: Path) -> dict[str, Any]:
    claim = instance.get("claim") or {}
    gpus = [d for d in instance["device_ids"] if ":cuda:" in d]
    gpu_layers = claim.get("offload_layers") if gpus else 0
    breakdown = estimate(case.name, path, len(gpus), gpu_layers)
    log = fleet.log(instance["id"])
    with (out / "instances.log").open("a") as logs:
        logs.write(f"\n===== {case.name} (instance {instance['id']}, devices {instance['device_ids']}) =====\n{log}")
    processes = gpu_processes() if gpus else {}
    return {
        "case": case.name,
        "role": case.role,
        "architecture": case.shape.arch,
        "weight_type": case.weight_type,
        "file_bytes": path.stat().st_size,
        "deploy_s": instance["deploy_s"],
        "device_ids": instance["device_ids"],
        "claim": claim,
        "engine_command": instance.get("engine_command"),
        "estimate": breakdown,
        "buffers": buffers(log),
        "nvml_process_bytes": processes.get(instance["pid"]) if instance.get("pid") else None,
        "host_rss": host_rss(instance.get("pid")),
        "chat": fleet.chat(case.name),
    }


def cells(result: dict[str, Any]) -> list[tuple[str, float | None, float | None]]:
    """(cell, measured bytes, estimated bytes) rows of one instance; tokens/s rows carry no estimate."""
    rows: list[tuple[str, float | None, float | None]] = []
    name, est, found = result["case"], result["estimate"], result["buffers"]
    host, *devices = est["breakdown"]  # as_json: the host first, then the GPUs in llama.cpp's order
    gpu = devices[0] if devices else None
    cuda = found.get("CUDA0", {})
    if gpu is not None and cuda:
        rows += [
            (f"{name} CUDA0 weights (model buffer)", cuda.get("model"), gpu["weights"]),
            (f"{name} CUDA0 KV", cuda.get("KV"), gpu["kv_cache"]),
            (f"{name} CUDA0 compute", cuda.get("compute"), gpu["compute"]),
            (f"{name} CUDA0 buffers, all", sum(cuda.values()), gpu["weights"] + gpu["kv_cache"] + gpu["compute"]),
            (f"{name} CUDA0 NVML process vs estimate", result["nvml_process_bytes"], gpu["total"]),
            (f"{name} CUDA0 NVML process vs claim", result["nvml_process_bytes"], _claimed(result)),
        ]
    rows.append((f"{name} host RSS vs estimated ram", result["host_rss"], host["total"]))
    cpu_model = sum(v.get("model", 0.0) for k, v in found.items() if k.startswith("CPU"))
    rows.append((f"{name} CPU model buffers vs host weights", cpu_model or None, host["weights"]))
    rows.append((f"{name} tokens/s through the gateway ({CHAT_TOKENS} tokens)", result["chat"]["tokens_per_s"], None))
    return rows


def _claimed(result: dict[str, Any]) -> int | None:
    vram = result["claim"].get("vram") or {}
    return sum(vram.values()) if vram else None


def run(out: Path, dry_run: bool, work: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    cases = [Case(c.name, scaled(c.shape, **TINY), c.weight_type, c.role) for c in CASES] if dry_run else CASES
    models = work / ("models-tiny" if dry_run else "models")
    paths = generate(cases, models)
    reserved = None
    nvml: dict[str, Any] | None = None
    if not dry_run:
        nvml = nvml_answers()
        (out / "nvml.json").write_text(json.dumps(nvml, indent=2))
        gpu = nvml["devices"][0]["memory"]
        full = {c.name: max(estimate(c.name, paths[c.name], 1, None)["vram"]) for c in cases}
        room = sum(1.15 * full[c.name] for c in cases if c.role == "full")
        room += sum(0.5 * full[c.name] for c in cases if c.role == "partial")
        reserved = round((gpu["total"] - gpu["used"] - room) / GiB, 2)
        console.print(f"full-GPU estimates {full}; reserving {reserved} GiB of VRAM leaves {room / GiB:.2f} GiB")
    stop_leftover(work / "fleet.pid")
    root = work / f"fleet-{int(time.time())}"
    fleet = Fleet(root, out, models, reserved)
    (work / "fleet.pid").write_text(str(fleet.process.pid))
    report: dict[str, Any] = {"dry_run": dry_run, "reserved_vram_gib": reserved, "nvml": nvml}
    try:
        report["devices"] = fleet.api.get("/api/devices").json()
        report["workers"] = fleet.api.get("/api/workers").json()
        report["engines"] = subprocess.run(
            [sys.executable, "-m", "gpufleet", "engines", "list"], capture_output=True, text=True, check=False
        ).stdout
        console.print(report["engines"])
        for device in report["devices"]:
            console.print(
                f"device {device['id']}: {device['name']} total {device['memory_total'] / GiB:.2f} GiB, "
                f"used {device['memory_used'] / GiB:.2f} GiB, uuid {device['uuid']}, cc {device['compute_capability']}"
            )
        console.print(f"worker labels: {[w.get('labels') for w in report['workers']]}")
        results = report["instances"] = []
        for case in cases:
            try:
                instance = fleet.deploy(case.name, paths[case.name])
                console.print(f"{case.name}: running on {instance['device_ids']} after {instance['deploy_s']:.1f} s")
                results.append(measure(fleet, case, paths[case.name], instance, out))
            except (RuntimeError, httpx.HTTPError, KeyError) as exc:
                console.print(f"[red]{case.name} failed: {exc}[/red]")
                results.append({"case": case.name, "error": str(exc)})
            (out / "gpu_truth.json").write_text(json.dumps(report, indent=2, default=str))  # a call cut short keeps it
        report["devices_after"] = fleet.api.get("/api/devices").json()
    finally:
        (out / "gpu_truth.json").write_text(json.dumps(report, indent=2, default=str))
        fleet.stop()
    print_table(report)
    (out / "gpu_truth.json").write_text(json.dumps(report, indent=2, default=str))
    return report


def stop_leftover(pid_file: Path) -> None:
    """Stop the gpufleet of an earlier call that was cut short (it runs in its own session, so the
    device tool does not end it), by the process id it recorded; it stops its engines in turn."""
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return
    if not psutil.pid_exists(pid):
        return
    console.print(f"stopping the gpufleet (pid {pid}) an earlier run left")
    os.killpg(pid, signal.SIGTERM)
    try:
        psutil.Process(pid).wait(30)
    except psutil.TimeoutExpired:
        os.killpg(pid, signal.SIGKILL)
    except psutil.NoSuchProcess:
        pass


def print_table(report: dict[str, Any]) -> None:
    table = Table("cell", "measured", "estimate", "error %", title="gpufleet on a real GPU: estimate vs CUDA")
    rows: list[dict[str, Any]] = []
    for result in report.get("instances", []):
        if "error" in result:
            table.add_row(result["case"], "failed", "", result["error"][:80])
            continue
        for cell, measured, estimated in cells(result):
            error = (estimated - measured) / measured * 100 if measured and estimated is not None else None
            rows.append({"cell": cell, "measured": measured, "estimate": estimated, "error_pct": error})
            unit = (lambda v: f"{v / MiB:.0f} MiB") if "tokens/s" not in cell else (lambda v: f"{v:.1f}")
            table.add_row(
                cell,
                unit(measured) if measured is not None else "n/a",
                unit(estimated) if estimated is not None else "",
                f"{error:+.1f}" if error is not None else "",
            )
    report["cells"] = rows
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["nvml", "run"])
    parser.add_argument("--out", type=Path, required=True, help="nvml: a JSON file; run: a directory")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu-truth"), help="models and data (persist)")
    parser.add_argument("--cpu-dry-run", action="store_true", help="no GPU: small models on the CPU")
    options = parser.parse_args()
    if options.what == "nvml":
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(json.dumps(nvml_answers(), indent=2))
        console.print(f"NVML answers written to {options.out}")
        return
    run(options.out, options.cpu_dry_run, options.work)


if __name__ == "__main__":
    main()
