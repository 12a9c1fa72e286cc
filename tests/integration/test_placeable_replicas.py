"""Create and update say how many replicas can be placed now (``replicas: 1000`` is not accepted silently)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.synthetic import preset, write_model
from tests.support.builders import register_worker
from tests.support.server import running_server
from tests.support.wait import eventually


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("gguf") / "llama-8b.gguf", preset("llama-3.1-8b"), "q8_0", sparse=True)


async def test_the_answer_says_how_many_replicas_fit_now(tmp_path: Path, model_file: Path) -> None:
    async with running_server(tmp_path) as server, await server.admin() as admin:
        await register_worker(admin, server.token, "gpu1", gpus=2, port=server.settings.port)

        async def ready() -> bool:
            return bool((await admin.get("/api/workers")).json()[0]["state"] == "ready")

        await eventually(ready, timeout=10, what="the worker probed and ready")
        body = {"name": "many", "source": "local_path", "local_path": str(model_file), "replicas": 1000}
        preview = (await admin.post("/api/models/preview", json=body)).json()
        fit = len(preview["placements"])
        assert 0 < fit < 1000, preview

        created = await admin.post("/api/models", json=body)
        assert created.status_code == 201, created.text
        many = created.json()
        assert many["replicas"] == 1000 and many["placeable_replicas"] == fit
        assert many["warnings"] and f"only {fit} of 1000 replicas can be placed now" in many["warnings"][0]
        assert "stay pending" in many["warnings"][0]

        # scaled to what fits: no warning; read back later, the field is absent (only create and update say it)
        scaled = await admin.patch(f"/api/models/{many['id']}", json={"replicas": fit})
        assert scaled.status_code == 200, scaled.text
        assert scaled.json()["placeable_replicas"] == fit and scaled.json()["warnings"] == []
        assert (await admin.get(f"/api/models/{many['id']}")).json()["placeable_replicas"] is None

        async def all_placed() -> bool:
            rows = (await admin.get("/api/model-instances", params={"model_id": many["id"]})).json()
            return len(rows) == fit and all(r["worker_id"] is not None for r in rows)

        await eventually(all_placed, timeout=10, what=f"{fit} instances placed")
        one = await admin.post("/api/models", json={**body, "name": "one", "replicas": 1})
        assert one.status_code == 201, one.text
        assert one.json()["warnings"]  # the first deployment holds every GPU now
