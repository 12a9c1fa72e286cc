"""What a ``/v1`` 503 tells whom: plain users learn the replicas' states and to ask an administrator,
never a path, a worker's name or address, or the allowed directories; admins keep the instances'
reasons. Issue 12, findings 8 and 13."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from testkit.synthetic import preset, write_model
from tests.integration.test_gateway_errors import CHAT, openai_error
from tests.support.builders import local_model, register_worker
from tests.support.server import running_server
from tests.support.wait import eventually

WORKER = "secret-node-7"
FAILURE = (
    "llama-server exited with code 1: failed to load /srv/private/models/tiny.gguf on secret-node-7 "
    "(10.1.2.3:40000; allowed dirs /srv/private)"
)
LEAKS = ("/srv", "/models", WORKER, "10.1.2.3", "allowed", "server (")


async def _scheduled(admin: httpx.AsyncClient, model_id: int) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        rows = (await admin.get("/api/model-instances", params={"model_id": model_id})).json()
        return rows[0] if rows and rows[0]["state"] == "scheduled" else None

    return await eventually(probe, timeout=5, what=f"an instance of model {model_id} placed")


async def _failed(admin: httpx.AsyncClient, credential: str, instance: dict[str, Any]) -> None:
    """The worker reports what a failed engine start looks like: its own words, paths and all."""
    async with httpx.AsyncClient(base_url=str(admin.base_url), timeout=10, trust_env=False) as worker:
        worker.headers["Authorization"] = f"Bearer {credential}"
        path = f"/api/model-instances/{instance['id']}/transition"
        started = await worker.post(path, json={"expected_version": instance["version"], "state": "starting"})
        assert started.status_code == 200, started.text
        failed = await worker.post(
            path, json={"expected_version": started.json()["version"], "state": "error", "state_message": FAILURE}
        )
        assert failed.status_code == 200, failed.text


async def test_a_plain_user_sees_no_paths_workers_or_configuration_in_503s(tmp_path: Path) -> None:
    model_file = write_model(tmp_path / "models" / "tiny.gguf", preset("llama-tiny"), sparse=True)
    async with running_server(tmp_path / "data") as server:
        async with await server.admin() as admin:
            registered = await register_worker(admin, server.token, WORKER, gpus=1, port=server.settings.port)
            body = {"name": "broken", "source": "local_path", "local_path": str(model_file)}
            broken = (await admin.post("/api/models", json=body)).json()
            await _failed(admin, registered["credential"], await _scheduled(admin, broken["id"]))
            # absent on the server: its pending instance's reason names the path and the server
            missing = (await admin.post("/api/models", json=local_model("elsewhere"))).json()

            async def explained() -> str | None:
                rows = (await admin.get("/api/model-instances", params={"model_id": missing["id"]})).json()
                return rows[0]["state_message"] if rows and "/models/tiny.gguf" in rows[0]["state_message"] else None

            await eventually(explained, timeout=5, what="the pending instance's reason")
            made = await admin.post(
                "/api/users", json={"username": "plain", "password": "plain-password-1", "role": "user"}
            )
            assert made.status_code == 201, made.text
            admin_key = (await admin.post("/api/api-keys", json={"name": "admin-key"})).json()["key"]
        async with server.client(await server.login("plain", "plain-password-1")) as plain:
            user_key = (await plain.post("/api/api-keys", json={"name": "user-key"})).json()["key"]

        async with server.client(user_key) as user:
            failed = openai_error(
                await user.post("/v1/chat/completions", json={**CHAT, "model": "broken"}), 503, "model_not_running"
            )
            assert "no running instance" in failed and "1 failed to start" in failed and "administrator" in failed
            pending = openai_error(
                await user.post("/v1/chat/completions", json={**CHAT, "model": "elsewhere"}), 503, "model_not_running"
            )
            assert "1 waiting to be placed" in pending, pending
            for message in (failed, pending):
                assert not any(leak in message for leak in LEAKS), message
                assert "broken-" not in message and "elsewhere-" not in message  # no instance names either

        async with server.client(admin_key) as admin_caller:  # an admin's key keeps the reasons
            detailed = openai_error(
                await admin_caller.post("/v1/chat/completions", json={**CHAT, "model": "broken"}),
                503,
                "model_not_running",
            )
            assert "is error" in detailed and WORKER in detailed and "/srv/private" in detailed, detailed
