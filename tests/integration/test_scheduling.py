"""The scheduler in the running server: pending instances are placed as soon as capacity appears,
say why when they cannot be, and two schedulers never place one instance twice."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpufleet.common.units import GiB
from gpufleet.db.migrate import upgrade
from gpufleet.db.session import Database
from gpufleet.db.tables import Model, ModelInstance, Worker
from gpufleet.schemas.workers import WorkerStatus
from gpufleet.server.controllers.scheduling import SchedulingController
from gpufleet.server.services.devices import sync_devices
from testkit.synthetic import preset, scaled, write_model
from tests.support.builders import register_worker, worker_registration
from tests.support.server import running_server
from tests.support.wait import eventually


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gguf")
    write_model(folder / "llama-8b.gguf", preset("llama-3.1-8b"), "q8_0", sparse=True)
    write_model(folder / "llama-70b.gguf", preset("llama-3.1-70b"), "f16", sparse=True)
    write_model(folder / "llama-70b-q4.gguf", preset("llama-3.1-70b"), "q4_0", sparse=True)
    write_model(folder / "small.gguf", scaled(preset("llama-3.1-8b"), n_layer=4), "f16", sparse=True)
    return folder


def model_body(name: str, path: Path, **fields: Any) -> dict[str, Any]:
    return {"name": name, "source": "local_path", "local_path": str(path), **fields}


async def instance_of(admin: httpx.AsyncClient, model_id: int, state: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        rows = (await admin.get("/api/model-instances", params={"model_id": model_id})).json()
        return next((r for r in rows if r["state"] == state), None)

    return await eventually(probe, timeout=5, what=f"an instance of model {model_id} in state {state}")


async def test_waits_for_a_worker_then_is_placed_at_once(tmp_path: Path, models_dir: Path) -> None:
    # An hour between full passes: only the worker joining can explain a quick placement.
    async with running_server(tmp_path, scheduler_resync_interval=3600) as server, await server.admin() as admin:
        model = (await admin.post("/api/models", json=model_body("m8b", models_dir / "llama-8b.gguf"))).json()
        pending = await instance_of(admin, model["id"], "pending")

        async def explained() -> str | None:
            row = (await admin.get(f"/api/model-instances/{pending['id']}")).json()
            return row["state_message"] if row["state_message"] == "no workers have joined yet" else None

        await eventually(explained, timeout=5, what="the pending reason")
        loop = asyncio.get_running_loop()
        joined_at = loop.time()
        worker = await register_worker(admin, server.token, "gpu1", gpus=2, port=server.settings.port)
        placed = await instance_of(admin, model["id"], "scheduled")
        assert loop.time() - joined_at < 1.0  # placed by the join (after the reachability probe), not a timer
        assert placed["worker_id"] == worker["worker"]["id"] and placed["worker_name"] == "gpu1"
        assert placed["device_ids"] == ["gpu1:cuda:0"]
        claim = placed["claim"]
        assert claim["mode"] == "single_gpu" and claim["offload_layers"] == claim["total_layers"] == 33
        assert 8 * GiB < claim["vram"]["gpu1:cuda:0"] < 10 * GiB and claim["ram"] > 0
        assert placed["state_message"].startswith("scheduled: single_gpu on gpu1")


async def test_big_model_splits_and_the_reason_is_actionable(tmp_path: Path, models_dir: Path) -> None:
    async with running_server(tmp_path) as server, await server.admin() as admin:
        await register_worker(admin, server.token, "big", gpus=2, port=server.settings.port)
        await register_worker(
            admin,
            server.token,
            "small",
            gpus=1,
            port=server.settings.port,
            labels={"tier": "small"},
            gpu_memory=24 * GiB,
            ram=128 * GiB,
        )
        multi = (await admin.post("/api/models", json=model_body("m70b", models_dir / "llama-70b.gguf"))).json()
        placed = await instance_of(admin, multi["id"], "scheduled")
        assert placed["claim"]["mode"] == "multi_gpu" and placed["device_ids"] == ["big:cuda:0", "big:cuda:1"]

        # A Q4_0 copy (~40 GiB) only fits on the 'small' worker's 24 GB GPU if CPU offloading is allowed.
        only_small = model_body("m70b-small", models_dir / "llama-70b-q4.gguf", worker_selector={"tier": "small"})
        second = (await admin.post("/api/models", json=only_small)).json()

        async def reason() -> str | None:
            rows = (await admin.get("/api/model-instances", params={"model_id": second["id"]})).json()
            message = rows[0]["state_message"] if rows else ""
            return message if message.startswith("0/2 workers fit") else None

        message = await eventually(reason, timeout=5, what="an explanation")
        assert "1 insufficient VRAM (needs" in message and "1 not matching worker_selector tier=small" in message
        assert "enabling CPU offloading would let it run on small (" in message
        await admin.patch(f"/api/models/{second['id']}", json={"cpu_offloading": True})
        offloaded = await instance_of(admin, second["id"], "scheduled")
        assert offloaded["claim"]["mode"] == "partial_offload" and offloaded["worker_name"] == "small"
        assert 0 < offloaded["claim"]["offload_layers"] < offloaded["claim"]["total_layers"]


async def test_freed_capacity_is_used_at_once(tmp_path: Path, models_dir: Path) -> None:
    async with running_server(tmp_path, scheduler_resync_interval=3600) as server, await server.admin() as admin:
        body = await register_worker(admin, server.token, "one", gpus=2, port=server.settings.port)
        first = (await admin.post("/api/models", json=model_body("a", models_dir / "llama-70b.gguf"))).json()
        placed = await instance_of(admin, first["id"], "scheduled")
        second = (
            await admin.post(
                "/api/models",
                json=model_body("b", models_dir / "llama-70b.gguf", distributed_inference_across_workers=False),
            )
        ).json()
        await instance_of(admin, second["id"], "pending")
        await admin.delete(f"/api/models/{first['id']}")
        # The worker acknowledges the stop (what its agent does once the engine is down).
        async with server.client(body["credential"]) as as_worker:

            async def acknowledged() -> bool:
                row = (await as_worker.get(f"/api/model-instances/{placed['id']}")).json()
                if row.get("state") != "stopping":
                    return False
                response = await as_worker.post(
                    f"/api/model-instances/{placed['id']}/release",
                    json={"expected_version": row["version"], "reason": "stopped"},
                )
                return response.status_code == 204

            await eventually(acknowledged, timeout=5, what="the stop to be acknowledged")
        moved = await instance_of(admin, second["id"], "scheduled")
        assert moved["device_ids"] == ["one:cuda:0", "one:cuda:1"]


async def ready(admin: httpx.AsyncClient, worker_id: int) -> None:
    async def probe() -> bool:
        return (await admin.get(f"/api/workers/{worker_id}")).json()["state"] == "ready"

    await eventually(probe, timeout=5, what="the worker to be ready")


async def test_preview_places_replicas_without_creating_anything(tmp_path: Path, models_dir: Path) -> None:
    async with running_server(tmp_path) as server, await server.admin() as admin:
        worker = await register_worker(admin, server.token, "w1", gpus=2, port=server.settings.port)
        await ready(admin, worker["worker"]["id"])
        response = await admin.post(
            "/api/models/preview", json=model_body("p", models_dir / "llama-8b.gguf", replicas=3)
        )
        assert response.status_code == 200
        preview = response.json()
        assert preview["schedulable"] is True and len(preview["placements"]) == 3
        assert [p["device_ids"] for p in preview["placements"]] == [["w1:cuda:0"], ["w1:cuda:1"], ["w1:cuda:0"]]
        assert all(p["mode"] == "single_gpu" and p["claim"]["total_layers"] == 33 for p in preview["placements"])
        too_many = (
            await admin.post(
                "/api/models/preview",
                json=model_body(
                    "p", models_dir / "llama-70b.gguf", replicas=2, distributed_inference_across_workers=False
                ),
            )
        ).json()
        assert too_many["schedulable"] is False and len(too_many["placements"]) == 1
        assert too_many["message"].startswith("1/2 replicas fit; 0/1 workers fit: 1 insufficient VRAM")
        assert too_many["reasons"] == [{"worker_name": "w1", "reason": too_many["reasons"][0]["reason"]}]
        missing = (await admin.post("/api/models/preview", json=model_body("p", tmp_path / "nope.gguf"))).json()
        assert missing["schedulable"] is False and "does not exist on the server" in missing["message"]
        invalid = await admin.post("/api/models/preview", json=model_body("p", models_dir / "x.gguf", replicas=-1))
        assert invalid.status_code == 422
        assert (await admin.get("/api/models")).json() == [] and (await admin.get("/api/model-instances")).json() == []


async def test_two_schedulers_never_place_one_instance_twice(
    tmp_path: Path, models_dir: Path, database_url: str
) -> None:
    setup = Database(database_url)
    await upgrade(setup)
    async with setup.transaction() as session:
        model = Model(
            name="m",
            source="local_path",
            local_path=str(models_dir / "small.gguf"),
            backend_parameters=[],
            replicas=20,
            placement_strategy="spread",
            worker_selector={},
            cpu_offloading=False,
            distributed_inference_across_workers=True,
        )
        session.add(model)
        registration = worker_registration("w", gpus=8)
        worker = Worker(
            name="w",
            ip="127.0.0.1",
            port=1,
            state="ready",
            labels={},
            maintenance=False,
            system_reserved=registration["system_reserved"],
            status=registration["status"],
            credential_hash="x",
            devices=[],
        )
        session.add(worker)
        await session.flush()
        sync_devices(worker, WorkerStatus.model_validate(registration["status"]).devices)
        for i in range(20):
            session.add(
                ModelInstance(
                    name=f"m-{i}",
                    model_id=model.id,
                    model_name="m",
                    state="pending",
                    device_ids=[],
                    subordinates=[],
                    restart_count=0,
                    version=0,
                )
            )
    first, second = Database(database_url), Database(database_url)
    a, b = SchedulingController(first, model_dirs=[models_dir]), SchedulingController(second, model_dirs=[models_dir])
    try:
        await asyncio.gather(a.reconcile("pending"), b.reconcile("pending"))
        async with setup.read() as session:
            from sqlalchemy import select

            rows = (await session.execute(select(ModelInstance))).scalars().all()
        assert {r.state for r in rows} == {"scheduled"}
        assert all(r.version == 1 for r in rows)  # each moved exactly once, by one of the two
    finally:
        for db in (setup, first, second):
            await db.dispose()


async def test_a_worker_where_the_engine_kept_failing_is_avoided(tmp_path: Path, models_dir: Path) -> None:
    async with running_server(tmp_path) as server, await server.admin() as admin:
        only = await register_worker(admin, server.token, "flaky", gpus=1, port=server.settings.port)
        model = (await admin.post("/api/models", json=model_body("m", models_dir / "llama-8b.gguf"))).json()
        placed = await instance_of(admin, model["id"], "scheduled")
        async with server.client(only["credential"]) as as_worker:
            released = await as_worker.post(
                f"/api/model-instances/{placed['id']}/release",
                json={"expected_version": placed["version"], "reason": "engine exited 3 times", "failed": True},
            )
            assert released.status_code == 204

        async def avoided() -> str | None:
            row = (await admin.get(f"/api/model-instances/{placed['id']}")).json()
            message = row["state_message"] or ""
            return message if row["state"] == "pending" and "avoided after engine failures" in message else None

        message = await eventually(avoided, timeout=5, what="the back-off to show")
        assert message.startswith("0/1 workers fit: 1 avoided after engine failures: engine exited 3 times (until ")
