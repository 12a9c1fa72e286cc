"""The Ray head of a vLLM instance across workers, through the API: the main worker reports its port,
the server records it at the worker's own ip, and the subordinates' parts are not ready again until
they report having joined the new head. Only the main worker can report it; a release forgets it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.test_workers import _first_instance, place
from tests.support.builders import local_model, register_worker
from tests.support.server import RunningServer, running_server
from tests.support.wait import eventually


async def place_across(server: RunningServer, instance_id: int, main: dict[str, Any], sub: dict[str, Any]) -> None:
    """Place the instance as the pipeline kind does: cuda:0 of ``main``, and ``sub``'s cuda:0 as its part."""
    part = {"worker_id": sub["id"], "worker_name": sub["name"], "device_ids": [f"{sub['name']}:cuda:0"], "claim": {}}
    engine = {"pipeline_parallel_size": 2, "tensor_parallel_size": 1}
    claim = {"ram": 1024, "vram": {}, "engine": engine}
    await place(server, instance_id, main, [f"{main['name']}:cuda:0"], claim=claim, subordinates=[part])


async def test_the_main_workers_head_is_recorded_and_the_parts_rejoin_it(tmp_path: Path, database_url: str) -> None:
    async with running_server(tmp_path / "data", database_url) as server, await server.admin() as admin:
        main = await register_worker(admin, server.token, "main", gpus=1, ip="10.1.0.1")
        sub = await register_worker(admin, server.token, "sub", gpus=1, ip="10.1.0.2")
        model = (await admin.post("/api/models", json=local_model())).json()
        instance = await eventually(lambda: _first_instance(admin, model["id"]))
        await place_across(server, instance["id"], main["worker"], sub["worker"])
        path = f"/api/model-instances/{instance['id']}"
        async with server.client(main["credential"]) as as_main, server.client(sub["credential"]) as as_sub:

            async def join(pid: int) -> dict[str, Any]:
                response = await as_sub.post(f"{path}/rpc-server", json={"rpc_port": 41100, "rpc_pid": pid})
                assert response.status_code == 200, response.text
                body: dict[str, Any] = response.json()
                return body

            async def report_head(row: dict[str, Any], port: int | None) -> dict[str, Any]:
                body = {"expected_version": row["version"], "state": "starting", "ray_head_port": port}
                response = await as_main.post(f"{path}/transition", json=body)
                assert response.status_code == 200, response.text
                answer: dict[str, Any] = response.json()
                return answer

            row = await join(501)  # a node that joined nothing yet: ready as far as the server knows
            assert row["ray_head"] is None and row["subordinates"][0]["rpc_port"] == 41100

            row = await report_head(row, 41000)
            assert row["ray_head"] == "10.1.0.1:41000"  # the main worker's registered ip, not one it names
            [part] = row["subordinates"]
            assert (part["rpc_port"], part["rpc_pid"]) == (None, None)
            assert part["message"] == "joining the cluster head at 10.1.0.1:41000"

            row = await join(502)
            assert row["subordinates"][0]["message"] is None and row["subordinates"][0]["rpc_pid"] == 502
            row = await report_head(row, 41000)  # the same head again: the parts stay ready
            assert row["subordinates"][0]["rpc_pid"] == 502

            row = await report_head(row, 41050)  # a new head (the old one died): the parts rejoin it
            assert row["ray_head"] == "10.1.0.1:41050" and row["subordinates"][0]["rpc_port"] is None
            row = await join(503)
            row = await report_head(row, None)  # null clears it; the parts are left as they are
            assert row["ray_head"] is None and row["subordinates"][0]["rpc_pid"] == 503

            as_sub_body = {"expected_version": row["version"], "state": "starting", "ray_head_port": 42000}
            refused = await as_sub.post(f"{path}/transition", json=as_sub_body)
            assert refused.status_code == 403  # only the main worker says where the head is
            bad = await as_main.post(f"{path}/transition", json={**as_sub_body, "ray_head_port": 70000})
            assert bad.status_code == 422 and "ray_head_port" in bad.text

        restarted = await admin.post(f"{path}/restart")
        assert restarted.status_code == 200 and restarted.json()["ray_head"] is None
