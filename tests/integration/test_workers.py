"""Workers through the API: registration, credentials and their limits, liveness, admin changes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gpufleet.common.errors import InvalidTransition
from gpufleet.schemas.states import InstanceState
from gpufleet.server.services import instances as instance_service
from tests.support.builders import local_model, register_worker, worker_registration
from tests.support.server import RunningServer, running_server
from tests.support.wait import eventually


async def place(
    server: RunningServer, instance_id: int, worker: dict[str, Any], device_ids: list[str], **fields: Any
) -> None:
    """Assign an instance to a worker the way the scheduler does: one guarded transition (``fields``:
    a ``claim`` or ``subordinates`` other than the default). The running scheduler may write the
    pending instance meanwhile (why it stays pending): then read it again and place it, as it would."""
    from gpufleet.db.tables import ModelInstance

    claim = {"claim": {"ram": 1024, "vram": {d: 2048 for d in device_ids if ":cpu:" not in d}}}
    for attempt in range(5):
        try:
            async with server.runtime.db.transaction() as session:
                row = await session.get(ModelInstance, instance_id)
                assert row is not None
                await instance_service.transition_and_publish(
                    session,
                    row,
                    InstanceState.SCHEDULED,
                    "placed by test",
                    worker_id=worker["id"],
                    worker_name=worker["name"],
                    device_ids=device_ids,
                    **(claim | fields),
                )
                return
        except InvalidTransition:
            if attempt == 4:
                raise


async def test_registration_needs_the_cluster_token(server: RunningServer) -> None:
    async with server.client("wrong-token") as client:
        response = await client.post("/api/workers/register", json=worker_registration("w"))
        assert response.status_code == 401
    async with await server.admin() as admin:
        body = await register_worker(admin, server.token, "w", gpus=2, labels={"zone": "eu"})
        worker = body["worker"]
        assert body["credential"].startswith("gfw_")
        assert worker["labels"] == {"zone": "eu", "os": "linux", "arch": "amd64", "gpu-vendor": "nvidia"}
        assert worker["gpu_count"] == 2 and worker["cpu_cores"] == 16
        assert [d["id"] for d in worker["devices"]] == ["w:cuda:0", "w:cuda:1", "w:cpu:0"]
        devices = (await admin.get("/api/devices")).json()
        assert {d["id"] for d in devices} == {"w:cuda:0", "w:cuda:1", "w:cpu:0"}
        gpu = next(d for d in devices if d["id"] == "w:cuda:1")
        assert gpu["index"] == 1 and gpu["type"] == "cuda" and gpu["compute_capability"] == "9.0"
        assert gpu["simulated"] is True and gpu["unified_memory"] is False and gpu["worker_id"] == worker["id"]

        clash = await admin.post(
            "/api/workers/register",
            json=worker_registration("w"),
            headers={"Authorization": f"Bearer {server.token}"},
        )
        assert clash.status_code == 409 and "already registered" in clash.json()["detail"]

    # The stored credential re-attaches the same worker, with a new address: beside the cluster token,
    # as the agent sends it (a credential alone may not move its worker: test_worker_identity.py).
    async with server.client(server.token) as as_agent:
        moved = worker_registration("w", ip="127.0.0.2") | {"credential": body["credential"]}
        again = await as_agent.post("/api/workers/register", json=moved)
        assert again.status_code == 200
        assert again.json()["worker"]["id"] == worker["id"] and again.json()["credential"] is None
        assert again.json()["worker"]["ip"] == "127.0.0.2"
    async with server.client(body["credential"]) as as_worker:
        same = await as_worker.post("/api/workers/register", json=worker_registration("w", ip="127.0.0.2"))
        assert same.status_code == 200 and same.json()["worker"]["id"] == worker["id"]


async def test_worker_credential_is_limited_to_its_own_worker(server: RunningServer) -> None:
    async with await server.admin() as admin:
        mine = await register_worker(admin, server.token, "mine")
        other = await register_worker(admin, server.token, "other")
        model = (await admin.post("/api/models", json=local_model())).json()
        instance = await eventually(lambda: _first_instance(admin, model["id"]))
    async with server.client(mine["credential"]) as as_worker:
        for method, path in [
            ("GET", "/api/users"),
            ("GET", "/api/api-keys"),
            ("GET", "/api/workers"),
            ("POST", "/api/api-keys"),
            ("DELETE", f"/api/workers/{other['worker']['id']}"),
            ("PATCH", f"/api/workers/{mine['worker']['id']}"),
            ("GET", "/api/devices"),
            ("POST", "/api/models"),
        ]:
            response = await as_worker.request(method, path, json={})
            assert response.status_code == 403, (method, path)
        assert (await as_worker.get(f"/api/workers/{other['worker']['id']}")).status_code == 403
        heartbeat = await as_worker.post(f"/api/workers/{other['worker']['id']}/heartbeat", json={})
        assert heartbeat.status_code == 403
        # Not its instance: invisible, and it cannot move it.
        assert (await as_worker.get("/api/model-instances")).json() == []
        assert (await as_worker.get(f"/api/model-instances/{instance['id']}")).status_code == 404
        moved = await as_worker.post(
            f"/api/model-instances/{instance['id']}/transition",
            json={"expected_version": instance["version"], "state": "error"},
        )
        assert moved.status_code == 403
        # Renaming itself onto another worker's name is a clash.
        rename = await as_worker.post("/api/workers/register", json=worker_registration("other"))
        assert rename.status_code == 409


async def _first_instance(admin: Any, model_id: int) -> dict[str, Any] | None:
    rows = (await admin.get("/api/model-instances", params={"model_id": model_id})).json()
    return rows[0] if rows else None


async def test_unprobeable_worker_is_unreachable_with_a_reason(server: RunningServer) -> None:
    async with await server.admin() as admin:
        body = await register_worker(admin, server.token, "far", port=9)  # nothing listens on port 9

        async def unreachable() -> dict[str, Any] | None:
            worker = (await admin.get(f"/api/workers/{body['worker']['id']}")).json()
            return worker if worker["state"] == "unreachable" else None

        worker = await eventually(unreachable, what="worker to be unreachable")
        assert "cannot reach the worker at 127.0.0.1:9" in worker["state_message"]
        assert "--worker-ip" in worker["state_message"]


async def test_stale_workers_become_not_ready_and_their_instances_unreachable(tmp_path: Path) -> None:
    async with running_server(tmp_path, heartbeat_interval=0.2) as server, await server.admin() as admin:
        body = await register_worker(admin, server.token, "quiet", gpus=1)
        model = (await admin.post("/api/models", json=local_model())).json()
        instance = await eventually(lambda: _first_instance(admin, model["id"]))
        await place(server, instance["id"], body["worker"], ["quiet:cuda:0"])

        async def not_ready() -> dict[str, Any] | None:
            worker = (await admin.get(f"/api/workers/{body['worker']['id']}")).json()
            return worker if worker["state"] == "not_ready" else None

        worker = await eventually(not_ready, timeout=5, what="stale worker to be not_ready")
        assert "no heartbeat for over 0.6s" in worker["state_message"]
        lost = (await admin.get(f"/api/model-instances/{instance['id']}")).json()
        assert lost["state"] == "unreachable" and "worker quiet is not_ready" in lost["state_message"]

        # A heartbeat brings it back (the worker reports its instances itself).
        async with server.client(body["credential"]) as as_worker:
            beat = await as_worker.post(f"/api/workers/{body['worker']['id']}/heartbeat", json={})
            assert beat.status_code == 200 and beat.json()["state"] in ("unreachable", "ready")


async def test_leaving_heartbeat_marks_not_ready_at_once(server: RunningServer) -> None:
    async with await server.admin() as admin:
        body = await register_worker(admin, server.token, "leaver")
    async with server.client(body["credential"]) as as_worker:
        response = await as_worker.post(f"/api/workers/{body['worker']['id']}/heartbeat", json={"leaving": True})
        assert response.json()["state"] == "not_ready"
        assert "shut down" in response.json()["state_message"]


async def test_labels_maintenance_and_delete(server: RunningServer) -> None:
    async with await server.admin() as admin:
        # Its "port" is the server's own, which answers /healthz: the probe succeeds and it becomes ready.
        body = await register_worker(
            admin, server.token, "node", gpus=1, labels={"zone": "a"}, port=server.settings.port
        )
        worker_id = body["worker"]["id"]

        async def ready() -> bool:
            return (await admin.get(f"/api/workers/{worker_id}")).json()["state"] == "ready"

        await eventually(ready, what="worker to be ready")
        patched = await admin.patch(f"/api/workers/{worker_id}", json={"labels": {"gpu": "h100"}})
        assert patched.json()["labels"] == {
            "gpu": "h100",
            "os": "linux",
            "arch": "amd64",
            "gpu-vendor": "nvidia",
        }
        forged = await admin.patch(f"/api/workers/{worker_id}", json={"labels": {"os": "windows"}})
        assert forged.status_code == 422 and "set automatically" in forged.json()["detail"]
        bad = await admin.patch(f"/api/workers/{worker_id}", json={"labels": {"-x": "1"}})
        assert bad.status_code == 422
        state = await admin.patch(f"/api/workers/{worker_id}", json={"state": "unreachable"})
        assert state.status_code == 422

        maintenance = (await admin.patch(f"/api/workers/{worker_id}", json={"state": "maintenance"})).json()
        assert maintenance["state"] == "maintenance" and "nothing new" in maintenance["state_message"]
        async with server.client(body["credential"]) as as_worker:  # heartbeats do not end maintenance
            beat = await as_worker.post(f"/api/workers/{worker_id}/heartbeat", json={})
            assert beat.json()["state"] == "maintenance"
        back = (await admin.patch(f"/api/workers/{worker_id}", json={"state": "ready"})).json()
        assert back["state"] == "ready" and back["state_message"] is None

        model = (await admin.post("/api/models", json=local_model())).json()
        instance = await eventually(lambda: _first_instance(admin, model["id"]))
        await place(server, instance["id"], body["worker"], ["node:cuda:0"])
        assert (await admin.delete(f"/api/workers/{worker_id}")).status_code == 204
        assert (await admin.get(f"/api/workers/{worker_id}")).status_code == 404
        assert (await admin.get("/api/devices")).json() == []
        released = (await admin.get(f"/api/model-instances/{instance['id']}")).json()
        assert released["state"] == "pending" and released["worker_id"] is None
        # The release says why; the scheduler may already have replaced that with why it cannot place it
        # (this test's model file does not exist).
        assert any(
            reason in released["state_message"]
            for reason in ("worker node was deleted", "cannot estimate the model's memory")
        )
        # Its credential is dead with it.
        async with server.client(body["credential"]) as as_worker:
            assert (await as_worker.post(f"/api/workers/{worker_id}/heartbeat", json={})).status_code == 401


async def test_scale_down_of_a_placed_instance_goes_through_stopping(server: RunningServer) -> None:
    async with await server.admin() as admin:
        body = await register_worker(admin, server.token, "node", gpus=1)
        model = (await admin.post("/api/models", json=local_model())).json()
        instance = await eventually(lambda: _first_instance(admin, model["id"]))
        await place(server, instance["id"], body["worker"], ["node:cuda:0"])
        await admin.patch(f"/api/models/{model['id']}", json={"replicas": 0})

        async def stopping() -> dict[str, Any] | None:
            row = (await admin.get(f"/api/model-instances/{instance['id']}")).json()
            return row if row["state"] == "stopping" else None

        row = await eventually(stopping, what="instance to be stopping")
        assert "scaled down to 0 replicas" in row["state_message"]
        async with server.client(body["credential"]) as as_worker:
            released = await as_worker.post(
                f"/api/model-instances/{instance['id']}/release",
                json={"expected_version": row["version"], "reason": "stopped"},
            )
            assert released.status_code == 204
        assert (await admin.get(f"/api/model-instances/{instance['id']}")).status_code == 404
        await asyncio.sleep(0.2)
        assert (await admin.get("/api/model-instances")).json() == []
