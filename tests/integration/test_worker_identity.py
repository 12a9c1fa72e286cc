"""A worker's identity through the real API: renamed in place by its agent, never by its credential alone.

The agent registers with the cluster token and the credential stored in its data dir: that worker
is renamed (same id, devices, instances). A worker credential alone (stolen, replayed) may only
re-attach the worker as it is: no new name, ip or port (issue 12, findings 1 and 10).
"""

from __future__ import annotations

from typing import Any

import httpx

from gpufleet.db.tables import Device, Worker
from tests.integration.test_workers import _first_instance, place
from tests.support.builders import local_model, register_worker, worker_registration
from tests.support.server import RunningServer
from tests.support.wait import eventually


async def reregister(server: RunningServer, name: str, credential: str, **kwargs: Any) -> httpx.Response:
    """What the agent sends when it restarts: the cluster token, and its stored credential in the body."""
    async with server.client(server.token) as client:
        body = worker_registration(name, gpus=2, **kwargs) | {"credential": credential}
        return await client.post("/api/workers/register", json=body)


async def test_a_restarted_agent_with_a_new_name_renames_its_worker_in_place(server: RunningServer) -> None:
    async with await server.admin() as admin:
        joined = await register_worker(admin, server.token, "nodea", gpus=2)
        worker_id = joined["worker"]["id"]
        model = (await admin.post("/api/models", json=local_model())).json()
        instance = await eventually(lambda: _first_instance(admin, model["id"]))
        await place(server, instance["id"], joined["worker"], ["nodea:cuda:1"])

        renamed = await reregister(server, "nodeb", joined["credential"], port=2)
        assert renamed.status_code == 200, renamed.text
        worker = renamed.json()["worker"]
        assert renamed.json()["credential"] is None  # it keeps the credential it has
        assert worker["id"] == worker_id and worker["name"] == "nodeb" and worker["port"] == 2
        assert [d["id"] for d in worker["devices"]] == ["nodeb:cuda:0", "nodeb:cuda:1", "nodeb:cpu:0"]
        assert [w["name"] for w in (await admin.get("/api/workers")).json()] == ["nodeb"]

        # Its instance is still there, on the same GPU under the new name, and still counted on it.
        moved = (await admin.get(f"/api/model-instances/{instance['id']}")).json()
        assert moved["worker_id"] == worker_id and moved["worker_name"] == "nodeb"
        assert moved["device_ids"] == ["nodeb:cuda:1"] and moved["state"] == "scheduled"
        devices = {d["id"]: d for d in (await admin.get("/api/devices")).json()}
        assert devices["nodeb:cuda:1"]["allocated"] == 2048
        assert [h["instance_id"] for h in devices["nodeb:cuda:1"]["holders"]] == [instance["id"]]
        assert not any(key.startswith("nodea:") for key in devices)

    async with server.runtime.db.read() as session:
        rows = (await session.get(Worker, worker_id)).devices  # type: ignore[union-attr]
        assert sorted((r.id, r.type, r.index) for r in rows) == [
            ("nodeb:cpu:0", "cpu", 0),
            ("nodeb:cuda:0", "cuda", 0),
            ("nodeb:cuda:1", "cuda", 1),
        ]
        assert await session.get(Device, "nodea:cuda:0") is None

    # And back again, with the heartbeat working on the same credential throughout.
    assert (await reregister(server, "nodea", joined["credential"], port=2)).status_code == 200
    async with server.client(joined["credential"]) as as_worker:
        beat = await as_worker.post(f"/api/workers/{worker_id}/heartbeat", json={})
        assert beat.status_code == 200


async def test_renaming_onto_another_workers_name_is_a_conflict_that_names_it(server: RunningServer) -> None:
    async with await server.admin() as admin:
        mine = await register_worker(admin, server.token, "mine", gpus=2)
        other = await register_worker(admin, server.token, "other")
        refused = await reregister(server, "other", mine["credential"])
        assert refused.status_code == 409
        detail = refused.json()["detail"]
        assert "cannot rename worker 'mine'" in detail and f"another worker (id {other['worker']['id']})" in detail
        assert "same moment" not in detail
        assert {w["name"] for w in (await admin.get("/api/workers")).json()} == {"mine", "other"}


async def test_a_credential_nobody_holds_is_404_and_says_to_register_anew(server: RunningServer) -> None:
    refused = await reregister(server, "ghost", "gfw_" + "x" * 43)
    assert refused.status_code == 404 and "register without it" in refused.json()["detail"]


async def test_a_worker_credential_alone_cannot_rename_or_move_its_worker(server: RunningServer) -> None:
    async with await server.admin() as admin:
        joined = await register_worker(admin, server.token, "real-worker", gpus=1, port=7001)
        worker_id = joined["worker"]["id"]
        before = (await admin.get(f"/api/workers/{worker_id}")).json()
        async with server.client(joined["credential"]) as stolen:
            for change in (
                {"name": "fake-worker", "port": 1},
                {"name": "fake-worker", "port": 7001},
                {"name": "real-worker", "port": 1},
                {"name": "real-worker", "port": 7001, "ip": "10.9.9.9"},
            ):
                body = worker_registration(
                    change["name"], gpus=1, port=change["port"], ip=change.get("ip", "127.0.0.1")
                )
                refused = await stolen.post("/api/workers/register", json=body)
                assert refused.status_code == 409, (change, refused.text)
                assert "a worker credential alone may not rename its worker or change its address" in refused.text
            # Even with a credential in the body: the bearer is what counts, and it is not the cluster token.
            body = worker_registration("fake-worker", gpus=1, port=1) | {"credential": joined["credential"]}
            assert (await stolen.post("/api/workers/register", json=body)).status_code == 409
            # As it is, it may re-attach (status, labels and its API token refresh).
            same = await stolen.post(
                "/api/workers/register", json=worker_registration("real-worker", gpus=1, port=7001)
            )
            assert same.status_code == 200 and same.json()["worker"]["id"] == worker_id
        after = (await admin.get(f"/api/workers/{worker_id}")).json()
        assert (after["name"], after["ip"], after["port"]) == (before["name"], before["ip"], before["port"])
        assert [d["id"] for d in after["devices"]] == ["real-worker:cuda:0", "real-worker:cpu:0"]
