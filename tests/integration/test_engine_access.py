"""Engines accept only the gateway (issue 12, findings 2 and 9), as the server's API sees it.

- Each instance's engine API key is derived by the server and told only to the worker running
  the instance (``GET /api/model-instances/{id}/engine-key``): never to admins, users or other
  workers, and never in an instance listing.
- ``backend_parameters`` take only the llama.cpp flags of the allow-list: flags that write files,
  open ports or change keys are refused with 422 naming the flag, and ``-c`` next to ``ctx_size``
  is a conflict instead of being dropped. A deployment stored before a flag was refused does not
  break the server: its instance stays pending and names the flag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from gpufleet.db.tables import Model
from gpufleet.server import secrets
from testkit.synthetic import preset, scaled, write_model
from tests.support.builders import register_worker
from tests.support.server import RunningServer
from tests.support.wait import eventually


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    return write_model(tmp_path / "small.gguf", scaled(preset("llama-3.1-8b"), n_layer=4), "f16", sparse=True)


def body(path: Path, name: str = "m", **fields: Any) -> dict[str, Any]:
    return {"name": name, "source": "local_path", "local_path": str(path), **fields}


async def instance_where(admin: httpx.AsyncClient, model_id: int, test: Any, what: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        rows = (await admin.get("/api/model-instances", params={"model_id": model_id})).json()
        return next((r for r in rows if test(r)), None)

    return await eventually(probe, timeout=10, what=what)


async def test_only_the_instances_worker_reads_its_engine_key(server: RunningServer, model_file: Path) -> None:
    async with await server.admin() as admin:
        mine = await register_worker(admin, server.token, "mine", gpus=1, port=server.settings.port)
        other = await register_worker(admin, server.token, "other", gpus=0, port=server.settings.port)
        model = (await admin.post("/api/models", json=body(model_file))).json()
        placed = await instance_where(admin, model["id"], lambda r: r["state"] == "scheduled", "the placement")
        assert placed["worker_name"] == "mine"
        url = f"/api/model-instances/{placed['id']}/engine-key"

        async with server.client(mine["credential"]) as worker:
            answer = await worker.get(url)
        assert answer.status_code == 200, answer.text
        key = answer.json()["api_key"]
        assert key == secrets.engine_key(server.token, placed["id"]) and key.startswith("gfe_") and len(key) > 60

        async with server.client(other["credential"]) as stranger:
            refused = await stranger.get(url)
        assert refused.status_code == 403 and "not assigned to this worker" in refused.json()["detail"]
        assert (await admin.get(url)).status_code == 403  # not even an admin
        async with server.client() as anonymous:
            assert (await anonymous.get(url)).status_code == 401
        async with server.client(server.token) as cluster:
            assert (await cluster.get(url)).status_code == 403
        # nowhere in what admins or workers list
        assert key not in (await admin.get("/api/model-instances")).text
        assert key not in (await admin.get(f"/api/model-instances/{placed['id']}")).text
        async with server.client(mine["credential"]) as worker:
            assert key not in (await worker.get("/api/model-instances")).text
        # each instance has its own key
        assert secrets.engine_key(server.token, placed["id"] + 1) != key


@pytest.mark.parametrize(
    ("parameters", "flag"),
    [
        (["--log-file", "/tmp/anywhere"], "--log-file"),
        (["--api-key", "secret"], "--api-key"),
        (["--api-key-file=/etc/passwd"], "--api-key-file"),
        (["--slot-save-path", "/tmp"], "--slot-save-path"),
        (["--chat-template-file", "/etc/shadow"], "--chat-template-file"),
        (["--path", "/"], "--path"),
        (["--metrics"], "--metrics"),
        (["--temp", "0.2", "--no-such-llama-flag"], "--no-such-llama-flag"),
    ],
)
async def test_flags_off_the_allow_list_are_refused_by_name(
    server: RunningServer, model_file: Path, parameters: list[str], flag: str
) -> None:
    async with await server.admin() as admin:
        created = await admin.post("/api/models", json=body(model_file, backend_parameters=parameters))
        assert created.status_code == 422, created.text
        detail = created.json()["detail"]
        assert detail.startswith(f"backend_parameters: {flag} is not an allowed llama.cpp flag; allowed: "), detail
        assert "--temp" in detail and "--jinja" in detail  # says what may be used instead
        assert "secret" not in (await admin.get("/api/models")).text  # nothing was stored

        good = await admin.post("/api/models", json=body(model_file, backend_parameters=["--temp", "0.5"]))
        assert good.status_code == 201, good.text
        patched = await admin.patch(f"/api/models/{good.json()['id']}", json={"backend_parameters": parameters})
        assert patched.status_code == 422 and flag in patched.json()["detail"], patched.text


async def test_tuning_flags_are_accepted(server: RunningServer, model_file: Path) -> None:
    tuning = [
        "--temp 0.7",
        "--top-k=40",
        "--min-p",
        "0.05",
        "--repeat-penalty",
        "1.1",
        "--seed",
        "-1",
        "-n",
        "256",
        "-t",
        "2",
        "--rope-scaling",
        "yarn",
        "--yarn-orig-ctx",
        "4096",
        "-ctk",
        "q8_0",
        "--jinja",
        "--chat-template",
        "chatml",
        "--reasoning-format",
        "deepseek",
        "--reasoning-budget",
        "-1",
        "--no-cont-batching",
        "--no-warmup",
        "-np",
        "2",
    ]
    async with await server.admin() as admin:
        created = await admin.post("/api/models", json=body(model_file, backend_parameters=tuning))
        assert created.status_code == 201, created.text
        assert created.json()["backend_parameters"] == tuning


async def test_a_context_size_set_twice_is_a_conflict(server: RunningServer, model_file: Path) -> None:
    async with await server.admin() as admin:
        for flag in (["-c", "1000000000"], ["--ctx-size=2048"]):
            created = await admin.post("/api/models", json=body(model_file, ctx_size=4096, backend_parameters=flag))
            assert created.status_code == 422, created.text
            detail = created.json()["detail"]
            assert flag[0].split("=")[0] in detail and "conflicts with ctx_size" in detail, detail
        alone = await admin.post("/api/models", json=body(model_file, backend_parameters=["-c", "2048"]))
        assert alone.status_code == 201, alone.text
        patched = await admin.patch(f"/api/models/{alone.json()['id']}", json={"ctx_size": 4096})
        assert patched.status_code == 422 and "conflicts with ctx_size" in patched.json()["detail"], patched.text


async def test_a_stored_deployment_with_a_refused_flag_says_why(server: RunningServer, model_file: Path) -> None:
    async with await server.admin() as admin:
        model = (await admin.post("/api/models", json=body(model_file))).json()
        # written as an older gpufleet would have accepted it
        async with server.runtime.db.transaction() as session:
            await session.execute(
                update(Model).where(Model.id == model["id"]).values(backend_parameters=["--log-file", "/tmp/x"])
            )
        await register_worker(admin, server.token, "w", gpus=1, port=server.settings.port)

        def names_the_flag(row: dict[str, Any]) -> bool:
            return row["state"] == "pending" and "--log-file is not an allowed llama.cpp flag" in str(
                row["state_message"]
            )

        await instance_where(admin, model["id"], names_the_flag, "the pending instance naming the flag")
        assert (await admin.get("/api/models")).status_code == 200
        # changing anything asks for the flag to go first; taking it away places the instance
        kept = await admin.patch(f"/api/models/{model['id']}", json={"replicas": 2})
        assert kept.status_code == 422 and "--log-file" in kept.json()["detail"], kept.text
        fixed = await admin.patch(f"/api/models/{model['id']}", json={"backend_parameters": ["--temp", "0.1"]})
        assert fixed.status_code == 200, fixed.text
        await instance_where(admin, model["id"], lambda r: r["state"] == "scheduled", "the placement once fixed")
