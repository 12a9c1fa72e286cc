"""On-demand and autoscaling fields through the API (validation, bounds, no roll), the events
route, ``/v1`` loading a model and saying why when it cannot, and the gateways' load seen across
servers (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gpufleet.common.units import GiB
from gpufleet.db.migrate import upgrade
from gpufleet.db.session import Database
from gpufleet.db.tables import Model
from gpufleet.server.gateway.balancer import Balancer
from gpufleet.server.gateway.load import LoadTracker
from gpufleet.server.gateway.routing import Route
from gpufleet.server.gateway.waiting import WaitingLines
from gpufleet.server.services.demand import Load
from testkit.synthetic import preset, write_model
from tests.support.builders import local_model, register_worker
from tests.support.server import RunningServer, running_server
from tests.support.wait import eventually

ON_DEMAND_BOUNDS = {"min_replicas": 0, "max_replicas": 1}


def on_demand(name: str, **extra: Any) -> dict[str, Any]:
    body = local_model(name, min_replicas=0, max_replicas=2, **extra)
    del body["replicas"]  # with bounds, left out: it starts at min_replicas
    return body


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"min_replicas": 0}, "min_replicas and max_replicas go together"),
        ({"min_replicas": 3, "max_replicas": 2}, "min_replicas (3) must not be above max_replicas (2)"),
        ({"min_replicas": 0, "max_replicas": 2, "replicas": 5}, "replicas (5) must be between"),
        ({"min_replicas": -1, "max_replicas": 2}, "min_replicas"),
        ({"idle_timeout": 0}, "idle_timeout"),
        ({"max_concurrent_requests": 0}, "max_concurrent_requests"),
        ({"max_queue": -1}, "max_queue"),
        ({"queue_timeout": 0}, "queue_timeout"),
        ({"priority": 5000}, "priority"),
    ],
)
async def test_bad_bounds_and_limits_are_refused_with_what_to_fix(
    server: RunningServer, changes: dict[str, Any], message: str
) -> None:
    async with await server.admin() as admin:
        refused = await admin.post("/api/models", json=local_model("bad", **changes))
        assert refused.status_code == 422 and message in refused.text, refused.text


async def test_an_on_demand_model_starts_at_zero_and_bounds_move_the_target(server: RunningServer) -> None:
    async with await server.admin() as admin:
        created = await admin.post("/api/models", json=on_demand("od", idle_timeout=30, priority=3))
        assert created.status_code == 201, created.text
        model = created.json()
        assert (model["replicas"], model["min_replicas"], model["max_replicas"]) == (0, 0, 2)
        assert (model["idle_timeout"], model["priority"], model["max_queue"], model["queue_timeout"]) == (
            30,
            3,
            100,
            120,
        )
        assert model["max_concurrent_requests"] is None  # the engine's parallel slots
        assert (model["running_replicas"], model["loading_replicas"], model["queued_requests"]) == (0, 0, 0)
        assert model["last_request_at"] is None
        assert (await admin.get("/api/model-instances", params={"model_id": model["id"]})).json() == []

        url = f"/api/models/{model['id']}"
        raised = (await admin.patch(url, json={"min_replicas": 1, "max_replicas": 3})).json()
        assert raised["replicas"] == 1  # the target moved inside the new bounds
        assert raised["spec_hash"] == model["spec_hash"]  # scaling fields never roll the instances

        async def one_loading() -> dict[str, Any] | None:
            shown: dict[str, Any] = (await admin.get(url)).json()
            return shown if shown["loading_replicas"] == 1 else None

        await eventually(one_loading, what="the new instance, pending")
        outside = await admin.patch(url, json={"replicas": 9})
        assert outside.status_code == 422 and "between min_replicas (1) and max_replicas (3)" in outside.text
        assert (await admin.patch(url, json={"priority": None})).status_code == 422  # not nullable
        fixed = (await admin.patch(url, json={"min_replicas": None, "max_replicas": None})).json()
        assert (fixed["replicas"], fixed["min_replicas"]) == (1, None)  # fixed at its current target

        assert (await admin.get(f"{url}/events")).json() == []
        assert (await admin.get("/api/models/9999/events")).status_code == 404


async def test_a_request_loads_an_on_demand_model_and_says_why_when_it_cannot(server: RunningServer) -> None:
    async with await server.admin() as admin:
        model = (await admin.post("/api/models", json=on_demand("od-chat", queue_timeout=1))).json()
        fixed = (await admin.post("/api/models", json=local_model("fixed-zero", replicas=0))).json()
        listed = [m["id"] for m in (await admin.get("/v1/models")).json()["data"]]
        assert "od-chat" in listed and "fixed-zero" not in listed  # callable when not loaded; 0 fixed is not

        answer = await admin.post("/v1/chat/completions", json={"model": "od-chat", "messages": []})
        # no worker: the instance it loaded stays pending, and after queue_timeout the caller hears why
        assert answer.status_code == 503 and int(answer.headers["Retry-After"]) >= 1, answer.text
        message = answer.json()["error"]["message"]
        assert "waited 1 s (the model's queue_timeout) for the model to load" in message
        assert "pending" in message
        shown = (await admin.get(f"/api/models/{model['id']}")).json()
        assert shown["replicas"] == 1 and shown["loading_replicas"] == 1
        [event] = (await admin.get(f"/api/models/{model['id']}/events")).json()
        assert event["kind"] == "load" and "a request arrived" in event["message"]
        assert fixed["replicas"] == 0


async def test_each_server_sees_the_others_load_until_it_is_stale(database_url: str) -> None:
    db = Database(database_url)
    try:
        await upgrade(db)
        async with db.transaction() as session:
            row = Model(name="m", source="local_path", local_path="/m.gguf", placement_strategy="spread", replicas=1)
            session.add(row)
            await session.flush()
            model_id = row.id
        now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)

        def tracker(server_id: str) -> LoadTracker:
            return LoadTracker(db, server_id, WaitingLines(Balancer()), clock=lambda: now)

        one, two = tracker("one"), tracker("two")
        route = Route(model_id, "m", 0)
        one.begin(route)
        one.begin(route)
        await one.flush()
        assert await two.everywhere() == {model_id: Load(in_flight=2)}  # the other server's requests
        assert await one.everywhere() == {model_id: Load(in_flight=2)}  # its own, counted once
        async with db.read() as session:
            stored = await session.get(Model, model_id)
            assert stored is not None and stored.last_request_at == now and stored.busy_at == now

        now += timedelta(seconds=7)  # one stopped writing: its row is stale, from a server that is gone
        assert await two.everywhere() == {}
        one.end(route)
        one.end(route)
        await one.flush()  # nothing left here: its row is deleted
        now -= timedelta(seconds=7)
        assert await two.everywhere() == {}
    finally:
        await db.dispose()


async def test_requests_waiting_on_another_server_are_shown(server: RunningServer) -> None:
    async with await server.admin() as admin:
        model = (await admin.post("/api/models", json=local_model("shown", replicas=0))).json()
        lines = WaitingLines(Balancer())
        other = LoadTracker(server.runtime.db, "another-server", lines)
        route = Route(model["id"], "shown", 0)  # no instance: a request there waits
        other.begin(route)
        waiting = asyncio.create_task(lines.take(route, "key"))

        async def queued_there() -> bool | None:
            return lines.queued(model["id"]) == 1 or None

        await eventually(queued_there, what="the request waiting on the other server")
        await other.flush()
        shown = (await admin.get(f"/api/models/{model['id']}")).json()
        assert shown["queued_requests"] == 1
        listed = {m["id"]: m for m in (await admin.get("/api/models")).json()}
        assert listed[model["id"]]["queued_requests"] == 1
        waiting.cancel()


async def test_a_plain_user_is_told_why_a_load_waits_without_worker_names(tmp_path: Path) -> None:
    big = write_model(tmp_path / "models" / "big.gguf", preset("llama-3.1-8b"), sparse=True)
    async with running_server(tmp_path / "data") as server:
        async with await server.admin() as admin:
            # 1 GiB of GPU and 1 GiB of RAM: an 8B model fits nowhere, and the reason names the worker
            await register_worker(
                admin, server.token, "secret-node-7", gpus=1, gpu_memory=GiB, ram=GiB, port=server.settings.port
            )
            body = {"name": "od-big", "source": "local_path", "local_path": str(big), "cpu_offloading": True}
            created = await admin.post("/api/models", json={**body, **ON_DEMAND_BOUNDS, "queue_timeout": 1})
            assert created.status_code == 201, created.text
            made = await admin.post(
                "/api/users", json={"username": "plain", "password": "plain-password-1", "role": "user"}
            )
            assert made.status_code == 201, made.text
        async with server.client(await server.login("plain", "plain-password-1")) as plain:
            refused = await plain.post("/v1/chat/completions", json={"model": "od-big", "messages": []})
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1, refused.text
        message = refused.json()["error"]["message"]
        assert "for the model to load" in message and "no worker has enough free memory for it now" in message
        assert "secret-node-7" not in message and str(tmp_path) not in message, message
