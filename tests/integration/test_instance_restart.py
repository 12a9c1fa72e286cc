"""``POST /api/model-instances/{id}/restart``: a placed instance goes back to ``pending`` on its
deployment, saying who restarted it; one that is not placed, or is stopping, is refused (409).

The real server and SQLite; the worker is only its API calls, the placement one guarded transition.
"""

from __future__ import annotations

from typing import Any

from gpufleet.server.services.instances import PENDING_MESSAGE
from tests.integration.test_workers import place
from tests.support.builders import local_model, register_worker
from tests.support.server import RunningServer
from tests.support.wait import eventually


async def _only_instance(server: RunningServer, model_id: int) -> dict[str, Any] | None:
    async with await server.admin() as admin:
        rows = (await admin.get("/api/model-instances", params={"model_id": model_id})).json()
    return rows[0] if len(rows) == 1 else None


async def test_a_placed_instance_goes_back_to_pending_and_a_pending_one_is_refused(server: RunningServer) -> None:
    async with await server.admin() as admin:
        worker = (await register_worker(admin, server.token, "w", gpus=1))["worker"]
        model = (await admin.post("/api/models", json=local_model("restartable"))).json()
        instance = await eventually(lambda: _only_instance(server, model["id"]), what="the pending instance")

        pending = await admin.post(f"/api/model-instances/{instance['id']}/restart")
        assert pending.status_code == 409
        assert pending.json()["detail"] == (
            f"instance {instance['name']} is pending: not placed on a worker yet, nothing to restart"
        )

        await place(server, instance["id"], worker, ["w:cuda:0"])
        placed = (await admin.get(f"/api/model-instances/{instance['id']}")).json()
        assert placed["state"] == "scheduled" and placed["worker_name"] == "w"

        restarted = await admin.post(f"/api/model-instances/{instance['id']}/restart")
        assert restarted.status_code == 200, restarted.text
        body = restarted.json()
        assert body["id"] == instance["id"] and body["model_id"] == model["id"]  # the deployment keeps it
        assert body["state"] == "pending" and body["state_message"] == f"restarted by admin; {PENDING_MESSAGE}"
        assert body["worker_id"] is None and body["device_ids"] == [] and body["claim"] is None
        assert body["version"] == placed["version"] + 1  # one guarded transition

        missing = await admin.post("/api/model-instances/999999/restart")
        assert missing.status_code == 404 and missing.json()["detail"] == "instance 999999 does not exist"


async def test_a_stopping_instance_is_not_restarted(server: RunningServer) -> None:
    async with await server.admin() as admin:
        worker = (await register_worker(admin, server.token, "w", gpus=1))["worker"]
        model = (await admin.post("/api/models", json=local_model("shrinking"))).json()
        instance = await eventually(lambda: _only_instance(server, model["id"]), what="the pending instance")
        await place(server, instance["id"], worker, ["w:cuda:0"])
        scaled = await admin.patch(f"/api/models/{model['id']}", json={"replicas": 0})
        assert scaled.status_code == 200, scaled.text

        async def stopping() -> dict[str, Any] | None:
            row = await _only_instance(server, model["id"])
            return row if row is not None and row["state"] == "stopping" else None

        row = await eventually(stopping, what="the placed instance stopping")
        refused = await admin.post(f"/api/model-instances/{row['id']}/restart")
        assert refused.status_code == 409
        assert refused.json()["detail"] == (
            f"instance {row['name']} is stopping: its deployment no longer wants it, nothing to restart"
        )
