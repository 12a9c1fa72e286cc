"""``/api/watch``: listing, SYNCED, live changes, and the per-worker filter."""

from __future__ import annotations

from typing import Any

from tests.integration.test_workers import _first_instance, place
from tests.support.builders import local_model, register_worker
from tests.support.server import RunningServer
from tests.support.wait import eventually
from tests.support.watch import WatchReader


async def test_admin_watch_lists_then_streams_changes(server: RunningServer) -> None:
    async with await server.admin() as admin:
        await admin.post("/api/models", json=local_model("before"))
        async with WatchReader(admin, "models,instances,workers") as watch:
            await watch.wait_for(
                lambda e: e["type"] == "ADDED" and e["kind"] == "models" and e["object"]["name"] == "before"
            )
            await watch.wait_for(lambda e: e["type"] == "SYNCED")
            created = (await admin.post("/api/models", json=local_model("after"))).json()
            event = await watch.wait_for(
                lambda e: e.get("kind") == "models" and e["type"] == "ADDED" and e["id"] == created["id"]
            )
            assert event["object"]["name"] == "after"
            added = await watch.wait_for(
                lambda e: (
                    e.get("kind") == "instances" and e["type"] == "ADDED" and e["object"]["model_id"] == created["id"]
                )
            )
            assert added["object"]["state"] == "pending"
            await register_worker(admin, server.token, "watched")
            await watch.wait_for(lambda e: e.get("kind") == "workers" and e["object"]["name"] == "watched")
            await admin.delete(f"/api/models/{created['id']}")
            await watch.wait_for(lambda e: e.get("kind") == "models" and e["type"] == "DELETED")


async def test_watch_rejects_unknown_kinds(server: RunningServer) -> None:
    async with await server.admin() as admin:
        response = await admin.get("/api/watch", params={"kinds": "models,gpus"})
        assert response.status_code == 422 and "unknown kind 'gpus'" in response.json()["detail"]
        worker = await register_worker(admin, server.token, "w")
    async with server.client(worker["credential"]) as as_worker:
        response = await as_worker.get("/api/watch", params={"kinds": "workers"})
        assert response.status_code == 403


async def test_worker_watch_sees_only_its_instances(server: RunningServer) -> None:
    async with await server.admin() as admin:
        one = await register_worker(admin, server.token, "one", gpus=1)
        two = await register_worker(admin, server.token, "two", gpus=1)
        model = (await admin.post("/api/models", json=local_model(replicas=2))).json()

        async def both() -> list[dict[str, Any]] | None:
            rows = (await admin.get("/api/model-instances", params={"model_id": model["id"]})).json()
            return rows if len(rows) == 2 else None

        first, second = await eventually(both)
        await place(server, first["id"], one["worker"], ["one:cuda:0"])
        async with server.client(one["credential"]) as as_one, WatchReader(as_one, "instances") as watch:
            listed = await watch.wait_for(lambda e: e["type"] == "ADDED")
            assert listed["id"] == first["id"]
            await watch.wait_for(lambda e: e["type"] == "SYNCED")
            await place(server, second["id"], two["worker"], ["two:cuda:0"])  # not for worker one
            # Move the first instance from worker one to worker two: one sees it leave.
            async with server.runtime.db.transaction() as session:
                from gpufleet.db.tables import ModelInstance
                from gpufleet.schemas.states import InstanceState
                from gpufleet.server.services import instances as instance_service

                row = await session.get(ModelInstance, first["id"])
                assert row is not None
                await instance_service.transition_and_publish(
                    session,
                    row,
                    InstanceState.PENDING,
                    "moved",
                    worker_id=None,
                    worker_name=None,
                    device_ids=[],
                )
            gone = await watch.wait_for(lambda e: e["type"] == "DELETED")
            assert gone["id"] == first["id"]
            assert all(e.get("id") != second["id"] for e in watch.events)
        assert await _first_instance(admin, model["id"])


async def test_worker_watch_drops_an_instance_event_older_than_what_it_sent(server: RunningServer) -> None:
    """Another server's change, relayed, can arrive after this server's newer one: the stream must not
    send the older state (here the instance as it was before being placed on the worker again)."""
    from gpufleet.schemas.events import Event, EventKind, EventType

    async with await server.admin() as admin:
        one = await register_worker(admin, server.token, "one", gpus=1)
        model = (await admin.post("/api/models", json=local_model(replicas=1))).json()
        instance = await eventually(lambda: _first_instance(admin, model["id"]))
        await place(server, instance["id"], one["worker"], ["one:cuda:0"])
        async with server.client(one["credential"]) as as_one, WatchReader(as_one, "instances") as watch:
            listed = await watch.wait_for(lambda e: e["type"] == "ADDED")
            await watch.wait_for(lambda e: e["type"] == "SYNCED")
            stale = {**listed["object"], "version": listed["object"]["version"] - 1, "worker_id": None}
            server.runtime.bus.publish(
                Event(kind=EventKind.INSTANCES, type=EventType.MODIFIED, id=listed["id"], object=stale)
            )
            newer = {**listed["object"], "version": listed["object"]["version"] + 1, "state_message": "newer"}
            server.runtime.bus.publish(
                Event(kind=EventKind.INSTANCES, type=EventType.MODIFIED, id=listed["id"], object=newer)
            )
            seen = await watch.wait_for(lambda e: e["type"] in ("MODIFIED", "DELETED"))
            assert seen["type"] == "MODIFIED" and seen["object"]["state_message"] == "newer", seen
