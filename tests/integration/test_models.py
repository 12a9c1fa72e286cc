"""Deployments through the API: validation, CRUD, replicas → pending instances, persistence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.builders import local_model, register_worker
from tests.support.server import RunningServer, running_server
from tests.support.wait import eventually


async def instances_of(admin: httpx.AsyncClient, model_id: int) -> list[dict[str, Any]]:
    response = await admin.get("/api/model-instances", params={"model_id": model_id})
    assert response.status_code == 200
    result: list[dict[str, Any]] = response.json()
    return result


async def wait_for_count(admin: httpx.AsyncClient, model_id: int, count: int) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        rows = await instances_of(admin, model_id)
        return rows if len(rows) == count else None

    return await eventually(probe, what=f"{count} instances of model {model_id}")


async def test_deployment_crud_and_replicas(server: RunningServer) -> None:
    async with await server.admin() as admin:
        created = await admin.post(
            "/api/models",
            json=local_model("qwen", replicas=2, ctx_size=4096, backend_parameters=["--flash-attn", "on"]),
        )
        assert created.status_code == 201, created.text
        model = created.json()
        assert model["placement_strategy"] == "spread" and model["cpu_offloading"] is False
        assert model["distributed_inference_across_workers"] is True and model["backend"] is None

        instances = await wait_for_count(admin, model["id"], 2)
        for instance in instances:
            assert instance["state"] == "pending" and instance["model_name"] == "qwen"
            # Either not looked at yet, or the scheduler's reason (this test's model file does not exist).
            assert any(
                reason in instance["state_message"]
                for reason in (
                    "waiting to be scheduled",
                    "cannot estimate the model's memory: local_path /models/tiny.gguf",
                )
            )
            assert instance["worker_id"] is None and instance["device_ids"] == []
            assert instance["name"].startswith("qwen-") and instance["restart_count"] == 0
            assert set(instance) >= {
                "id",
                "name",
                "model_id",
                "model_name",
                "state",
                "state_message",
                "worker_id",
                "worker_name",
                "device_ids",
                "port",
                "pid",
                "claim",
                "subordinates",
                "restart_count",
                "download_progress",
            }

        patched = await admin.patch(f"/api/models/{model['id']}", json={"replicas": 3, "description": "x"})
        assert patched.status_code == 200 and patched.json()["replicas"] == 3
        await wait_for_count(admin, model["id"], 3)
        assert (await admin.patch(f"/api/models/{model['id']}", json={"replicas": 1})).status_code == 200
        await wait_for_count(admin, model["id"], 1)
        assert (await admin.patch(f"/api/models/{model['id']}", json={"replicas": 0})).status_code == 200
        await wait_for_count(admin, model["id"], 0)

        listed = (await admin.get("/api/models")).json()
        assert [m["name"] for m in listed] == ["qwen"] and listed[0]["description"] == "x"
        assert (await admin.get(f"/api/models/{model['id']}")).json()["ctx_size"] == 4096

        await admin.patch(f"/api/models/{model['id']}", json={"replicas": 2})
        await wait_for_count(admin, model["id"], 2)
        assert (await admin.delete(f"/api/models/{model['id']}")).status_code == 204
        assert (await admin.get(f"/api/models/{model['id']}")).status_code == 404

        async def no_instances() -> bool:
            return (await admin.get("/api/model-instances")).json() == []

        await eventually(no_instances, what="instances of the deleted model to go")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"replicas": -1}, 422, "replicas: Input should be greater than or equal to 0"),
        ({"colour": "red"}, 422, "colour: unknown field"),
        ({"source": "huggingface", "local_path": None}, 422, "huggingface_repo_id is required"),
        (
            {"source": "ollama_library", "ollama_library_model_name": "llama3"},
            422,
            "local_path does not apply to source 'ollama_library'",
        ),
        ({"local_path": "relative/model.gguf"}, 422, "local_path must be an absolute path"),
        ({"name": "bad name!"}, 422, "name: must be 1-128 characters"),
        ({"placement_strategy": "random"}, 422, "placement_strategy: Input should be 'spread' or 'binpack'"),
        ({"backend": "tgi"}, 422, "backend: Input should be 'llama.cpp' or 'vllm'"),
        ({"gpu_selector": {"device_ids": ["not an id"]}}, 422, "is not a device id of the form"),
        ({"gpu_selector": {"device_ids": ["ghost:cuda:0"]}}, 422, "no such device ghost:cuda:0"),
        (
            {"gpu_selector": {"device_ids": []}},
            422,
            "gpu_selector.device_ids: List should have at least 1 item",
        ),
        ({"worker_selector": {"gpu": "a 100"}}, 422, "label value 'a 100'"),
        ({"ctx_size": 0}, 422, "ctx_size: Input should be greater than or equal to 1"),
        ({"backend_parameters": "--ctx 4"}, 422, "backend_parameters: Input should be a valid list"),
    ],
)
async def test_invalid_deployments_name_the_field(
    server: RunningServer, body: dict[str, Any], status: int, message: str
) -> None:
    async with await server.admin() as admin:
        response = await admin.post("/api/models", json={**local_model("m"), **body})
        assert response.status_code == status, response.text
        assert message in response.json()["detail"]
        assert (await admin.get("/api/models")).json() == []  # nothing half-written


async def test_duplicate_names_and_bad_updates(server: RunningServer) -> None:
    async with await server.admin() as admin:
        first = (await admin.post("/api/models", json=local_model("a"))).json()
        await admin.post("/api/models", json=local_model("b"))
        duplicate = await admin.post("/api/models", json=local_model("a"))
        assert duplicate.status_code == 409 and "a model named 'a' already exists" in duplicate.json()["detail"]
        rename = await admin.patch(f"/api/models/{first['id']}", json={"name": "b"})
        assert rename.status_code == 409
        negative = await admin.patch(f"/api/models/{first['id']}", json={"replicas": -2})
        assert negative.status_code == 422
        null_name = await admin.patch(f"/api/models/{first['id']}", json={"name": None})
        assert null_name.status_code == 422 and "name cannot be null" in null_name.json()["detail"]
        # Switching source must bring the new source's fields; the old ones are dropped.
        switched = await admin.patch(f"/api/models/{first['id']}", json={"source": "huggingface"})
        assert switched.status_code == 422 and "huggingface_repo_id is required" in switched.json()["detail"]
        switched = await admin.patch(
            f"/api/models/{first['id']}",
            json={
                "source": "huggingface",
                "huggingface_repo_id": "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
                "huggingface_filename": "*q4_k_m.gguf",
            },
        )
        assert switched.status_code == 200 and switched.json()["local_path"] is None
        assert (await admin.patch("/api/models/999", json={"replicas": 1})).status_code == 404
        assert (await admin.get(f"/api/models/{first['id']}")).json()["name"] == "a"


async def test_gpu_selector_accepts_existing_devices(server: RunningServer) -> None:
    async with await server.admin() as admin:
        await register_worker(admin, server.token, "gpu-node", gpus=2)
        ok = await admin.post(
            "/api/models",
            json=local_model("pinned", gpu_selector={"device_ids": ["gpu-node:cuda:1", "gpu-node:cpu:0"]}),
        )
        assert ok.status_code == 201, ok.text
        missing = await admin.post(
            "/api/models", json=local_model("p2", gpu_selector={"device_ids": ["gpu-node:cuda:7"]})
        )
        assert missing.status_code == 422 and "gpu-node:cuda:7" in missing.json()["detail"]


async def test_deployments_survive_a_server_restart(tmp_path: Path, database_url: str) -> None:
    async with running_server(tmp_path, database_url) as server, await server.admin() as admin:
        model = (await admin.post("/api/models", json=local_model("keep", replicas=2))).json()
        await wait_for_count(admin, model["id"], 2)
        await admin.post("/api/users", json={"username": "u1", "password": "password-1"})
        key = (await admin.post("/api/api-keys", json={"name": "k"})).json()["key"]
        worker = await register_worker(admin, server.token, "w1", gpus=1, labels={"zone": "a"})
    async with running_server(tmp_path, database_url, port=server.settings.port) as again:
        async with again.client(key) as admin:
            assert [m["name"] for m in (await admin.get("/api/models")).json()] == ["keep"]
            assert len(await instances_of(admin, model["id"])) == 2
            assert "u1" in [u["username"] for u in (await admin.get("/api/users")).json()]
            workers = (await admin.get("/api/workers")).json()
            assert workers[0]["labels"]["zone"] == "a" and workers[0]["gpu_count"] == 1
        async with again.client(worker["credential"]) as as_worker:
            assert (await as_worker.get(f"/api/workers/{worker['worker']['id']}")).status_code == 200
