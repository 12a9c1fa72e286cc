"""A server without an embedded worker restarts — killed with SIGKILL, then stopped gracefully —
while a remote worker serves a real engine: the engine keeps serving throughout, the worker
reconnects by itself, the gateway answers again, and every row is still there."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from testkit.synthetic import preset, write_model
from tests.support.engine_cluster import chat, kill_engines
from tests.support.engines import find_llama_server, llama_server_missing_reason
from tests.support.gpufleet_cluster import Cluster
from tests.support.processes import GpufleetProcess

ENGINE_TIMEOUT = 90.0


def start_server(cluster: Cluster, models: Path) -> GpufleetProcess:
    return cluster.start_server("--disable-worker", "--allowed-model-dirs", str(models))


def rows(admin: httpx.Client) -> dict[str, Any]:
    """Everything a restart must keep, as the API lists it."""
    instances = admin.get("/api/model-instances").json()
    return {
        "models": sorted((m["id"], m["name"]) for m in admin.get("/api/models").json()),
        "instances": sorted((i["id"], i["name"], i["worker_name"], i["port"], i["pid"]) for i in instances),
        "keys": sorted((k["id"], k["name"]) for k in admin.get("/api/api-keys").json()),
        "users": sorted((u["id"], u["username"]) for u in admin.get("/api/users").json()),
        "usage": admin.get("/api/usage", params={"group_by": "key"}).json(),
    }


def until(check: Any, what: str, timeout: float = ENGINE_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def gateway_chat(cluster: Cluster, key: str) -> httpx.Response:
    return httpx.post(
        f"{cluster.url}/v1/chat/completions",
        json={"model": "restart", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "temperature": 0},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
        trust_env=False,
    )


def test_engines_serve_through_server_restarts_and_nothing_is_lost(tmp_path: Path) -> None:
    llama_server = find_llama_server()
    if llama_server is None:
        pytest.skip(llama_server_missing_reason())
    models = tmp_path / "models"
    write_model(models / "llama-tiny.gguf", preset("llama-tiny"))
    cluster = Cluster(tmp_path)
    try:
        server = start_server(cluster, models)
        cluster.start_worker("remote", "--llama-server-path", str(llama_server), "--allowed-model-dirs", str(models))
        with cluster.admin() as admin:
            cluster.wait_state(admin, "remote", "ready")
            assert admin.post("/api/users", json={"username": "dev", "password": "dev-password-1"}).status_code == 201
            key = admin.post("/api/api-keys", json={"name": "client"}).json()["key"]
            body = {"name": "restart", "source": "local_path", "local_path": str(models / "llama-tiny.gguf")}
            model = admin.post("/api/models", json={**body, "cpu_offloading": True}).json()

            def running() -> dict[str, Any] | None:
                listed = admin.get("/api/model-instances", params={"model_id": model["id"]}).json()
                return listed[0] if len(listed) == 1 and listed[0]["state"] == "running" else None

            instance = until(running, "the engine to run")
            assert gateway_chat(cluster, key).status_code == 200
            until(lambda: admin.get("/api/usage", params={"group_by": "key"}).json(), "the usage row to be written")
            before = rows(admin)

        for restart in ("SIGKILL", "graceful stop"):
            if restart == "SIGKILL":
                server.kill()
            else:
                assert server.stop() == 0
            cluster.processes.remove(server)
            # No server: the engine, a separate process of the worker, still answers.
            assert chat(instance, "restart").status_code == 200, restart
            server = start_server(cluster, models)
            with cluster.admin() as admin:
                cluster.wait_state(admin, "remote", "ready")
                assert until(running, f"the instance running after the {restart}")["pid"] == instance["pid"]
                assert until(lambda: gateway_chat(cluster, key).status_code == 200, "the gateway to answer")
                after = rows(admin)
                assert {k: v for k, v in after.items() if k != "usage"} == {
                    k: v for k, v in before.items() if k != "usage"
                }, restart
                (used_before,), (used_after,) = before["usage"], after["usage"]
                assert used_after["requests"] >= used_before["requests"], restart
    finally:
        for process in reversed(cluster.processes):
            process.kill()
        kill_engines(tmp_path)  # the worker was killed, not stopped: its engine would outlive the test
