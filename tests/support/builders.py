"""Small builders for request bodies and hardware inventories used across tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from gpufleet.common.units import GiB

H100 = {
    "vendor": "nvidia",
    "name": "NVIDIA H100 80GB HBM3",
    "type": "cuda",
    "memory": 80 * GiB,
    "compute_capability": "9.0",
}
RTX4090 = {
    "vendor": "nvidia",
    "name": "NVIDIA GeForce RTX 4090",
    "type": "cuda",
    "memory": 24 * GiB,
    "compute_capability": "8.9",
}
M2_ULTRA = {
    "vendor": "apple",
    "name": "Apple M2 Ultra",
    "type": "metal",
    "memory": 192 * GiB,
    "unified_memory": True,
}


def inventory(path: Path, gpus: list[dict[str, Any]], cpu: dict[str, int] | None = None) -> Path:
    body: dict[str, Any] = {"gpus": gpus}
    if cpu is not None:
        body["cpu"] = cpu
    path.write_text(json.dumps(body))
    return path


def worker_registration(
    name: str,
    *,
    port: int = 1,
    gpus: int = 0,
    ip: str = "127.0.0.1",
    labels: dict[str, str] | None = None,
    gpu_memory: int = 80 * GiB,
    ram: int = 64 * GiB,
) -> dict[str, Any]:
    """A worker's registration body: ``gpus`` simulated NVIDIA GPUs (H100 80 GB unless ``gpu_memory``)."""
    devices: list[dict[str, Any]] = [
        {
            "index": i,
            "type": "cuda",
            "vendor": "nvidia",
            "name": "NVIDIA H100 80GB HBM3",
            "memory_total": gpu_memory,
            "memory_used": GiB,
            "compute_capability": "9.0",
            "simulated": True,
        }
        for i in range(gpus)
    ]
    devices.append(
        {
            "index": 0,
            "type": "cpu",
            "vendor": "intel",
            "name": "Xeon",
            "memory_total": ram,
            "memory_used": 8 * GiB,
            "cores": 16,
        }
    )
    return {
        "name": name,
        "ip": ip,
        "port": port,
        "labels": labels or {},
        "system_reserved": {"ram": 2 * GiB, "vram": GiB},
        "status": {
            "hostname": name,
            "os": "linux",
            "arch": "amd64",
            "cpu_cores": 16,
            "memory_total": ram,
            "memory_used": 8 * GiB,
            "devices": devices,
            "gpufleet_version": "test",
        },
    }


async def register_worker(client: httpx.AsyncClient, token: str, name: str, **kwargs: Any) -> dict[str, Any]:
    """Register through the real API with the cluster token; returns the JSON answer (worker + credential)."""
    response = await client.post(
        "/api/workers/register",
        json=worker_registration(name, **kwargs),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def local_model(name: str = "tiny", replicas: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "source": "local_path",
        "local_path": "/models/tiny.gguf",
        "replicas": replicas,
        **extra,
    }
