"""Rolling replacement in the running server: a deployment change replaces instances one at a time.

The worker is registered through the API with simulated GPUs; the test plays its agent through the
same API a real one uses (report ``starting``/``running``, release a ``stopping`` instance once its
engine would be down), so the real scheduler and deployments controller do the rest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpufleet.common.net import free_port
from gpufleet.common.units import GiB
from testkit.synthetic import preset, write_model
from tests.support.builders import register_worker
from tests.support.server import RunningServer, running_server
from tests.support.wait import eventually
from tests.support.watch import WatchReader

Row = dict[str, Any]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8B Q8_0 GGUF (header only, sparse): about 9 GiB of VRAM per instance."""
    return write_model(tmp_path_factory.mktemp("gguf") / "llama-8b.gguf", preset("llama-3.1-8b"), "q8_0", sparse=True)


@dataclass
class Cluster:
    """The server, an admin client and one simulated worker whose agent the test plays."""

    server: RunningServer
    admin: httpx.AsyncClient
    worker: httpx.AsyncClient

    async def instances(self, model_id: int) -> list[Row]:
        rows: list[Row] = (await self.admin.get("/api/model-instances", params={"model_id": model_id})).json()
        return rows

    async def settled(self) -> None:
        """Both controllers have nothing left to do (the state observed next is where they stopped)."""
        runtime = self.server.runtime
        for _ in range(3):  # one's writes can wake the other
            await runtime.deployments.idle()
            await runtime.scheduler.idle()

    async def wait(self, model_id: int, predicate: Any, what: str) -> list[Row]:
        async def probe() -> list[Row] | None:
            rows = await self.instances(model_id)
            return rows if predicate(rows) else None

        return await eventually(probe, timeout=10, what=what)

    async def run(self, instance: Row) -> Row:
        """The agent's reports: the engine is starting, then answers its health check."""
        row = instance
        for state in ("starting", "running"):
            response = await self.worker.post(
                f"/api/model-instances/{instance['id']}/transition",
                json={"expected_version": row["version"], "state": state, "pid": 4000 + row["id"], "port": 40000},
            )
            assert response.status_code == 200, response.text
            row = response.json()
        return row

    async def stopped(self, instance: Row) -> None:
        """The agent stopped the engine of a ``stopping`` instance and gives it back (the row goes)."""
        response = await self.worker.post(
            f"/api/model-instances/{instance['id']}/release",
            json={"expected_version": instance["version"], "reason": "stopped by the worker"},
        )
        assert response.status_code == 204, response.text


@asynccontextmanager
async def cluster(tmp_path: Path, **worker: Any) -> AsyncIterator[Cluster]:
    async with running_server(tmp_path) as server, await server.admin() as admin:
        body = await register_worker(admin, server.token, "w", port=server.settings.port, **worker)
        async with server.client(body["credential"]) as as_worker:
            yield Cluster(server, admin, as_worker)


def deployment(path: Path, name: str, **fields: Any) -> Row:
    return {"name": name, "source": "local_path", "local_path": str(path), **fields}


def in_state(rows: list[Row], state: str, spec_hash: str | None = None) -> list[Row]:
    return [r for r in rows if r["state"] == state and (spec_hash is None or r["spec_hash"] == spec_hash)]


async def deploy_running(c: Cluster, body: Row) -> tuple[Row, list[Row]]:
    """Deploy, wait for every replica to be placed, and run them all."""
    model: Row = (await c.admin.post("/api/models", json=body)).json()
    placed = await c.wait(
        model["id"],
        lambda rows: len(in_state(rows, "scheduled")) == body["replicas"],
        "every replica placed",
    )
    return model, [await c.run(row) for row in placed]


async def change(c: Cluster, model_id: int, **fields: Any) -> Row:
    response = await c.admin.patch(f"/api/models/{model_id}", json=fields)
    assert response.status_code == 200, response.text
    body: Row = response.json()
    return body


async def test_a_ctx_size_change_replaces_instances_one_at_a_time(tmp_path: Path, model_path: Path) -> None:
    async with cluster(tmp_path, gpus=4) as c:
        model, old = await deploy_running(c, deployment(model_path, "roll", replicas=2, ctx_size=4096))
        assert {r["spec_hash"] for r in old} == {model["spec_hash"]}
        async with WatchReader(c.admin, "instances") as watch:
            changed = await change(c, model["id"], ctx_size=8192)
            new_hash = changed["spec_hash"]
            assert new_hash != model["spec_hash"]
            assert (changed["ready_replicas"], changed["updated_replicas"], changed["outdated_replicas"]) == (2, 0, 2)
            added = await watch.wait_for(lambda e: e["type"] == "ADDED" and e["object"]["spec_hash"] == new_hash)
        assert added["object"]["state_message"].startswith(f"replacing {old[0]['name']} after a deployment change")

        for step in range(2):
            # One surge instance is placed; every old one still runs, and no second surge appears.
            await c.wait(model["id"], lambda rows: in_state(rows, "scheduled", new_hash), "the surge to be placed")
            await c.settled()
            rows = await c.instances(model["id"])
            [surge] = in_state(rows, "scheduled", new_hash)
            assert len(in_state(rows, "running")) == 2 and len(rows) == 3, rows
            await c.run(surge)
            # Now it runs, one old instance stops, saying why; two still run (one new, one old).
            rows = await c.wait(model["id"], lambda rows: in_state(rows, "stopping"), "an old instance to stop")
            [stopping] = in_state(rows, "stopping")
            assert stopping["spec_hash"] == model["spec_hash"] and stopping["id"] == old[step]["id"]
            assert stopping["state_message"] == f"stopping: replaced by {surge['name']} after a deployment change"
            await c.settled()
            rows = await c.instances(model["id"])
            assert len(in_state(rows, "running")) == 2 and len(rows) == 3, rows  # no surge while it stops
            await c.stopped(stopping)

        await c.settled()
        rows = await c.instances(model["id"])
        assert len(rows) == 2 and all(r["state"] == "running" and r["spec_hash"] == new_hash for r in rows)
        final = (await c.admin.get(f"/api/models/{model['id']}")).json()
        assert (final["ready_replicas"], final["updated_replicas"], final["outdated_replicas"]) == (2, 2, 0)


async def test_without_room_for_a_surge_one_old_instance_makes_room(tmp_path: Path, model_path: Path) -> None:
    # Two 12 GiB GPUs: one instance each, no room for a third anywhere.
    async with cluster(tmp_path, gpus=2, gpu_memory=12 * GiB) as c:
        model, _ = await deploy_running(c, deployment(model_path, "tight", replicas=2, ctx_size=2048))
        new_hash = (await change(c, model["id"], ctx_size=4096))["spec_hash"]
        for _ in range(2):
            await c.wait(model["id"], lambda rows: in_state(rows, "stopping"), "an old instance to make room")
            await c.settled()
            rows = await c.instances(model["id"])
            [stopping] = in_state(rows, "stopping")
            [surge] = in_state(rows, "pending", new_hash)
            assert stopping["state_message"].startswith(f"stopping: making room for {surge['name']}")
            assert "0/1 workers fit" in surge["state_message"]  # the scheduler's reason, kept
            assert len(in_state(rows, "running")) == 1 and len(rows) == 3, rows  # one fallback at a time
            await c.stopped(stopping)
            placed = await c.wait(
                model["id"], lambda rows: in_state(rows, "scheduled", new_hash), "the surge to get the freed room"
            )
            [scheduled] = in_state(placed, "scheduled")
            assert scheduled["id"] == surge["id"]
            await c.run(scheduled)
        await c.settled()
        rows = await c.instances(model["id"])
        assert len(rows) == 2 and all(r["state"] == "running" and r["spec_hash"] == new_hash for r in rows)


async def test_a_change_that_fits_nowhere_leaves_the_old_instances_serving(tmp_path: Path, model_path: Path) -> None:
    async with cluster(tmp_path, gpus=1) as c:
        model, [old] = await deploy_running(c, deployment(model_path, "stay", replicas=1))
        changed = await change(c, model["id"], worker_selector={"tier": "nowhere"})
        rows = await c.wait(
            model["id"],
            lambda rows: any("not matching worker_selector" in (r["state_message"] or "") for r in rows),
            "the surge to say why it waits",
        )
        await c.settled()
        rows = await c.instances(model["id"])
        assert [(r["id"], r["state"]) for r in rows] == [(old["id"], "running"), (rows[1]["id"], "pending")]
        assert rows[1]["spec_hash"] == changed["spec_hash"]
        counts = (await c.admin.get(f"/api/models/{model['id']}")).json()
        assert (counts["ready_replicas"], counts["updated_replicas"], counts["outdated_replicas"]) == (1, 1, 1)


async def test_a_second_change_during_a_roll_rolls_to_the_newest_spec(tmp_path: Path, model_path: Path) -> None:
    async with cluster(tmp_path, gpus=4) as c, WatchReader(c.admin, "instances") as watch:
        model, _ = await deploy_running(c, deployment(model_path, "twice", replicas=2, ctx_size=2048))
        second = (await change(c, model["id"], ctx_size=4096))["spec_hash"]
        rows = await c.wait(model["id"], lambda rows: in_state(rows, "scheduled", second), "the first surge")
        [abandoned] = in_state(rows, "scheduled", second)
        third = (await change(c, model["id"], ctx_size=8192))["spec_hash"]
        # The half-made instance of the second spec serves nothing: it is stopped at once.
        rows = await c.wait(model["id"], lambda rows: in_state(rows, "stopping"), "the abandoned surge to stop")
        assert [r["id"] for r in in_state(rows, "stopping")] == [abandoned["id"]]
        await c.stopped(in_state(rows, "stopping")[0])
        for _ in range(2):
            rows = await c.wait(model["id"], lambda rows: in_state(rows, "scheduled", third), "a surge of the third")
            await c.run(in_state(rows, "scheduled", third)[0])
            rows = await c.wait(model["id"], lambda rows: in_state(rows, "stopping"), "an old one to stop")
            await c.stopped(in_state(rows, "stopping")[0])
        await c.settled()
        rows = await c.instances(model["id"])
        assert len(rows) == 2 and all(r["state"] == "running" and r["spec_hash"] == third for r in rows)
        added = [e for e in watch.events if e["type"] == "ADDED" and e["object"]["model_id"] == model["id"]]
        assert len(added) == 2 + 1 + 2  # the originals, one abandoned surge, two of the newest spec: no leak


async def test_a_roll_continues_after_a_server_restart(tmp_path: Path, model_path: Path) -> None:
    port = free_port()  # the same address both times: the worker's probe target stays valid
    async with running_server(tmp_path, port=port) as server, await server.admin() as admin:
        body = await register_worker(admin, server.token, "w", port=port, gpus=2)
        async with server.client(body["credential"]) as as_worker:
            c = Cluster(server, admin, as_worker)
            model, [old] = await deploy_running(c, deployment(model_path, "restart", replicas=1, ctx_size=2048))
            new_hash = (await change(c, model["id"], ctx_size=4096))["spec_hash"]
            await c.wait(model["id"], lambda rows: in_state(rows, "scheduled", new_hash), "the surge to be placed")
    async with (
        running_server(tmp_path, port=port) as server,
        await server.admin() as admin,
        server.client(body["credential"]) as as_worker,
    ):
        c = Cluster(server, admin, as_worker)
        await c.run(in_state(await c.instances(model["id"]), "scheduled", new_hash)[0])
        rows = await c.wait(model["id"], lambda rows: in_state(rows, "stopping"), "the old one to stop")
        assert [r["id"] for r in in_state(rows, "stopping")] == [old["id"]]
        await c.stopped(in_state(rows, "stopping")[0])
        rows = await c.wait(model["id"], lambda rows: len(rows) == 1, "one instance left")
        assert rows[0]["state"] == "running" and rows[0]["spec_hash"] == new_hash
