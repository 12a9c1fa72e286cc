"""One ``gpufleet start`` (server + embedded worker on loopback) running real llama.cpp engines.

Shared by the end-to-end tests that need deployed models to really serve (session scope: the
engine binary and the cluster start once). Tests deploy under their own model names and delete
what they deploy.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from testkit.synthetic import preset, write_model
from tests.support.engines import find_llama_server, llama_server_missing_reason
from tests.support.gpufleet_cluster import Cluster
from tests.support.processes import GpufleetProcess

RESTART_BACKOFF = 0.5  # seconds before the first restart of a crashed engine (10 s in production)
GATEWAY_TIMEOUT = 5.0  # seconds the gateway waits on an engine's next bytes (600 s in production)
ENGINE_TIMEOUT = 60.0


class Engines:
    """The running cluster and an admin client, with helpers that wait on instance states."""

    def __init__(self, cluster: Cluster, server: GpufleetProcess, models: Path, llama_server: Path) -> None:
        self.cluster = cluster
        self.llama_server = llama_server
        self.server = server
        self.models = models
        self.admin = cluster.admin()

    def instances(self, model_id: int) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self.admin.get("/api/model-instances", params={"model_id": model_id}).json()
        return listed

    def wait(
        self, model_id: int, done: Callable[[list[dict[str, Any]]], bool], what: str, timeout: float = ENGINE_TIMEOUT
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        listed: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            listed = self.instances(model_id)
            if done(listed):
                return listed
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: {listed}\n{self.server.output()[-4000:]}")

    def wait_running(self, model_id: int, count: int, timeout: float = ENGINE_TIMEOUT) -> list[dict[str, Any]]:
        return self.wait(
            model_id,
            lambda xs: len(xs) == count and all(x["state"] == "running" for x in xs),
            f"{count} running instance(s) of model {model_id}",
            timeout,
        )

    def deploy(self, name: str, path: Path, **extra: Any) -> dict[str, Any]:
        body = {"name": name, "source": "local_path", "local_path": str(path), "cpu_offloading": True, **extra}
        created = self.admin.post("/api/models", json=body)
        assert created.status_code == 201, created.text
        model: dict[str, Any] = created.json()
        return model


def start_engines(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str] | None = None) -> Iterator[Engines]:
    """Start the cluster (skipping the test when no llama-server exists); stop it and its engines after.

    ``env`` adds variables to the gpufleet process's environment (e.g. ``HF_ENDPOINT``)."""
    llama_server = find_llama_server()
    if llama_server is None:
        pytest.skip(llama_server_missing_reason())
    root = tmp_path_factory.mktemp("engine")
    models = root / "models"
    write_model(models / "llama-tiny.gguf", preset("llama-tiny"))
    cluster = Cluster(root)
    server = cluster.start_server(
        "--llama-server-path",
        str(llama_server),
        "--allowed-model-dirs",
        str(models),
        env={
            "GPUFLEET_ENGINE_RESTART_BACKOFF": str(RESTART_BACKOFF),
            "GPUFLEET_GATEWAY_TIMEOUT": str(GATEWAY_TIMEOUT),
            **(env or {}),
        },
    )
    running = Engines(cluster, server, models, llama_server)
    with running.admin:
        cluster.wait_state(running.admin, "main", "ready")
        yield running
        for model in running.admin.get("/api/models").json():
            running.admin.delete(f"/api/models/{model['id']}")
    for process in reversed(cluster.processes):
        process.kill()
    kill_engines(root)


def kill_engines(root: Path) -> None:
    """SIGKILL every engine a test's cluster under ``root`` may have left (see ``_engine_pids``)."""
    for pid in _engine_pids(root):
        _kill(pid)


def _engine_pids(root: Path) -> list[int]:
    """Engines left by the cluster under ``root``: llama-servers whose command line names a file there,
    and every engine (RPC servers too) the workers recorded in their data dirs."""
    found = set()
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if any(str(root) in part for part in cmdline) and any("llama-server" in part for part in cmdline[:1]):
            found.add(process.info["pid"])
    for record in root.glob("*/engines/*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            found.add(int(json.loads(record.read_text())["pid"]))
    return sorted(found)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def engine_headers(pid: int) -> dict[str, str]:
    """What the gateway presents to an engine: its API key, read where gpufleet put it, the engine
    process's environment (readable by its owner only; never its command line)."""
    environ = dict(
        item.split(b"=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in item
    )
    return {"Authorization": f"Bearer {environ[b'LLAMA_API_KEY'].decode()}"}


def chat(instance: dict[str, Any], model: str) -> httpx.Response:
    """A short, deterministic chat completion straight to an instance's engine, with its API key."""
    return httpx.post(
        f"http://127.0.0.1:{instance['port']}/v1/chat/completions",
        json={
            "model": model,
            "messages": [{"role": "user", "content": "Say something."}],
            "max_tokens": 8,
            "temperature": 0,
        },
        headers=engine_headers(instance["pid"]),
        timeout=60,
        trust_env=False,
    )
