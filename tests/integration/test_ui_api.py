"""What the web UI reads from the API, computed on the server: memory allocated per device with the
instances holding it, usage over time per hour or day, an instance's engine command, the join command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpufleet.common.units import GiB
from testkit.synthetic import preset, scaled, write_model
from tests.support.builders import register_worker
from tests.support.server import running_server
from tests.support.wait import eventually


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ui-models") / "small.gguf"
    write_model(path, scaled(preset("llama-3.1-8b"), n_layer=4), "f16", sparse=True)
    return path


async def placed(admin: httpx.AsyncClient, model_id: int) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        rows = (await admin.get("/api/model-instances", params={"model_id": model_id})).json()
        return rows[0] if rows and rows[0]["state"] == "scheduled" else None

    return await eventually(probe, timeout=5, what=f"an instance of model {model_id} placed")


async def test_devices_show_what_is_allocated_and_who_holds_it(tmp_path: Path, small_model: Path) -> None:
    async with running_server(tmp_path) as server, await server.admin() as admin:
        await register_worker(admin, server.token, "gpu1", gpus=2, port=server.settings.port)
        body = {"name": "small", "source": "local_path", "local_path": str(small_model), "replicas": 2}
        model = (await admin.post("/api/models", json=body)).json()
        await placed(admin, model["id"])

        async def both_placed() -> list[dict[str, Any]] | None:
            rows = (await admin.get("/api/model-instances", params={"model_id": model["id"]})).json()
            return rows if len(rows) == 2 and all(r["state"] == "scheduled" for r in rows) else None

        instances = await eventually(both_placed, timeout=5, what="both replicas placed")
        devices = {d["id"]: d for d in (await admin.get("/api/devices")).json()}
        for instance in instances:  # spread: one GPU each, and the claim on the device is the instance's
            (gpu,) = instance["device_ids"]
            (holder,) = devices[gpu]["holders"]
            assert holder == {
                "instance_id": instance["id"],
                "instance_name": instance["name"],
                "model_name": "small",
                "state": "scheduled",
                "bytes": instance["claim"]["vram"][gpu],
            }
            assert devices[gpu]["allocated"] == instance["claim"]["vram"][gpu] > 0
            assert devices[gpu]["memory_used"] == GiB  # what the worker reported, apart from the claims
        cpu = devices["gpu1:cpu:0"]
        assert cpu["allocated"] == sum(i["claim"]["ram"] for i in instances) == sum(h["bytes"] for h in cpu["holders"])
        worker_devices = (await admin.get("/api/workers")).json()[0]["devices"]
        assert "holders" not in worker_devices[0]  # only GET /api/devices computes allocations


async def test_usage_over_time_per_hour_and_day(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, await server.admin() as admin:
        await admin.post("/api/users", json={"username": "dev", "password": "dev-password", "role": "user"})
        dev_id = next(u["id"] for u in (await admin.get("/api/users")).json() if u["username"] == "dev")
        usage = server.runtime.gateway.usage
        usage.record(1, None, "alpha", 10, 5)  # the admin (user 1), with a session
        usage.record(1, None, "alpha", 1, 1)
        usage.record(dev_id, None, "beta", 100, 50)
        now = datetime.now(UTC)
        today = now.date().isoformat()

        hourly = (await admin.get("/api/usage/series", params={"step": "hour", "from": today, "to": today})).json()
        assert hourly["step"] == "hour" and len(hourly["buckets"]) == 24
        hour = now.replace(minute=0, second=0, microsecond=0)
        assert datetime.fromisoformat(hourly["buckets"][now.hour]) == hour
        points = {p["model_name"]: p for p in hourly["points"]}
        assert points["alpha"]["requests"] == 2 and points["alpha"]["total_tokens"] == 17
        assert points["beta"]["total_tokens"] == 150 and datetime.fromisoformat(points["beta"]["time"]) == hour

        week = (await admin.get("/api/usage/series")).json()  # default: the last 7 days per day
        assert week["step"] == "day" and len(week["buckets"]) == 7 and len(week["points"]) == 2
        assert datetime.fromisoformat(week["buckets"][-1]).date() == now.date()

    async with running_server(tmp_path) as server:  # written at shutdown, read again after a restart
        dev = server.client(await server.login("dev", "dev-password"))
        async with dev:
            own = (await dev.get("/api/usage/series", params={"step": "hour", "from": today, "to": today})).json()
            assert [p["model_name"] for p in own["points"]] == ["beta"]  # a user sees their own
            long = await dev.get("/api/usage/series", params={"step": "hour", "from": "2020-01-01", "to": today})
            assert long.status_code == 422 and "too long a series" in long.json()["detail"]
            later = (now + timedelta(days=2)).date().isoformat()
            backwards = await dev.get("/api/usage/series", params={"from": later, "to": today})
            assert backwards.status_code == 422 and "is after" in backwards.json()["detail"]


async def test_an_instance_keeps_the_engine_command_its_worker_reports(tmp_path: Path, small_model: Path) -> None:
    async with running_server(tmp_path) as server, await server.admin() as admin:
        registered = await register_worker(admin, server.token, "gpu1", gpus=1, port=server.settings.port)
        body = {"name": "small", "source": "local_path", "local_path": str(small_model)}
        model = (await admin.post("/api/models", json=body)).json()
        instance = await placed(admin, model["id"])
        assert instance["engine_command"] is None
        command = ["/opt/llama-server", "-m", str(small_model), "--alias", "small", "--port", "40000"]
        async with server.client(registered["credential"]) as worker:
            moved = await worker.post(
                f"/api/model-instances/{instance['id']}/transition",
                json={"expected_version": instance["version"], "state": "starting", "engine_command": command},
            )
            assert moved.status_code == 200, moved.text
        assert (await admin.get(f"/api/model-instances/{instance['id']}")).json()["engine_command"] == command


async def test_the_join_command_names_this_server_and_its_token(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, await server.admin() as admin:
        join = (await admin.get("/api/workers/join")).json()
        assert join["server_url"] == server.url and join["token"] == server.token
        assert join["command"] == f"GPUFLEET_TOKEN={server.token} gpufleet start --server-url {server.url}"
