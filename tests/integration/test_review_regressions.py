"""Regressions found in review: each test names the failure it guards against."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from gpufleet.server.routes import watch as watch_route
from tests.integration.test_workers import _first_instance, place
from tests.support.builders import local_model, register_worker
from tests.support.server import RunningServer, running_server
from tests.support.wait import eventually
from tests.support.watch import WatchReader


async def _drive_to_running(server: RunningServer, credential: str, instance_id: int) -> dict[str, Any]:
    async with server.client(credential) as as_worker:
        row: dict[str, Any] = (await as_worker.get(f"/api/model-instances/{instance_id}")).json()
        for state in ("starting", "running"):
            response = await as_worker.post(
                f"/api/model-instances/{instance_id}/transition",
                json={"expected_version": row["version"], "state": state, "pid": 4242, "port": 40001},
            )
            assert response.status_code == 200, response.text
            row = response.json()
        return row


async def test_deleting_a_worker_with_a_running_instance_sends_it_back_to_pending(server: RunningServer) -> None:
    async with await server.admin() as admin:
        body = await register_worker(admin, server.token, "busy", gpus=1)
        model = (await admin.post("/api/models", json=local_model())).json()
        instance = await eventually(lambda: _first_instance(admin, model["id"]))
        await place(server, instance["id"], body["worker"], ["busy:cuda:0"])
        running = await _drive_to_running(server, body["credential"], instance["id"])
        assert running["state"] == "running" and running["pid"] == 4242 and running["port"] == 40001
        assert (await admin.get(f"/api/models/{model['id']}")).json()["ready_replicas"] == 1
        assert (await admin.delete(f"/api/workers/{body['worker']['id']}")).status_code == 204
        row = (await admin.get(f"/api/model-instances/{instance['id']}")).json()
        assert row["state"] == "pending" and row["pid"] is None and row["worker_id"] is None


async def test_a_watch_ends_when_its_api_key_is_revoked(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch_route, "CREDENTIAL_CHECK_INTERVAL", 0.2)
    async with await server.admin() as admin:
        key = (await admin.post("/api/api-keys", json={"name": "watcher"})).json()
        async with server.client(key["key"]) as by_key, WatchReader(by_key, "models") as watch:
            await watch.wait_for(lambda e: e["type"] == "SYNCED")
            assert (await admin.delete(f"/api/api-keys/{key['id']}")).status_code == 204
            await asyncio.wait_for(watch.finished(), 3)
            await admin.post("/api/models", json=local_model("after-revocation"))
            await asyncio.sleep(0.2)
            assert all(e.get("object", {}).get("name") != "after-revocation" for e in watch.events)


async def test_a_deleted_workers_watch_ends_at_once(server: RunningServer) -> None:
    async with await server.admin() as admin:
        body = await register_worker(admin, server.token, "doomed")
        async with server.client(body["credential"]) as as_worker, WatchReader(as_worker, "instances") as watch:
            await watch.wait_for(lambda e: e["type"] == "SYNCED")
            await admin.delete(f"/api/workers/{body['worker']['id']}")
            await asyncio.wait_for(watch.finished(), 2)


async def test_hung_workers_do_not_delay_the_probe_of_a_healthy_one(server: RunningServer) -> None:
    hung = socket.socket()  # accepts connections, never answers: each probe of it waits for its timeout
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)
    try:
        async with await server.admin() as admin:
            for i in range(6):
                await register_worker(admin, server.token, f"hung{i}", port=hung.getsockname()[1])
            # A worker whose port answers /healthz: the server's own port does.
            healthy = await register_worker(admin, server.token, "healthy", port=server.settings.port)

            async def ready() -> bool:
                worker = (await admin.get(f"/api/workers/{healthy['worker']['id']}")).json()
                return worker["state"] == "ready"

            await eventually(ready, timeout=2.0, what="the healthy worker to be probed while others hang")
    finally:
        hung.close()


async def test_a_dead_worker_in_maintenance_becomes_not_ready(tmp_path: Path) -> None:
    async with running_server(tmp_path, heartbeat_interval=0.2) as server, await server.admin() as admin:
        body = await register_worker(admin, server.token, "resting", gpus=1)
        worker_id = body["worker"]["id"]
        model = (await admin.post("/api/models", json=local_model())).json()
        instance = await eventually(lambda: _first_instance(admin, model["id"]))
        await place(server, instance["id"], body["worker"], ["resting:cuda:0"])
        await admin.patch(f"/api/workers/{worker_id}", json={"state": "maintenance"})
        await admin.delete(f"/api/models/{model['id']}")  # its instance goes to stopping, on a worker that is gone

        async def dead() -> dict[str, Any] | None:
            worker = (await admin.get(f"/api/workers/{worker_id}")).json()
            return worker if worker["state"] == "not_ready" else None

        await eventually(dead, timeout=5, what="the silent maintenance worker to be not_ready")

        async def stop_finished() -> bool:
            return (await admin.get(f"/api/model-instances/{instance['id']}")).status_code == 404

        await eventually(stop_finished, timeout=5, what="the abandoned stop to be finished by the server")

        async with server.client(body["credential"]) as as_worker:  # it comes back: still in maintenance
            await as_worker.post(f"/api/workers/{worker_id}/heartbeat", json={})
        worker = (await admin.get(f"/api/workers/{worker_id}")).json()
        assert worker["state"] in ("maintenance", "unreachable")
        assert worker["heartbeat_at"].endswith(("Z", "+00:00"))  # timestamps carry their zone, on SQLite too
