"""Desired state is pushed to workers, not polled: with a 60 s heartbeat an assignment arrives in < 1 s."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_workers import place
from tests.support.builders import H100, inventory, local_model
from tests.support.processes import GpufleetProcess, ports
from tests.support.server import running_server
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e


async def test_assignment_reaches_a_worker_within_a_second(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path / "server", heartbeat_interval=60.0) as server,
        await server.admin() as admin,
    ):
        gpus = inventory(tmp_path / "gpus.json", [H100])
        worker = GpufleetProcess(
            [
                "--server-url",
                server.url,
                "--token",
                server.token,
                "--host",
                "127.0.0.1",
                "--worker-name",
                "slow",
                "--worker-port",
                str(ports(1)[0]),
                "--data-dir",
                str(tmp_path / "worker"),
                "--heartbeat-interval",
                "60",
                "--device-inventory",
                str(gpus),
            ],
            tmp_path / "worker.log",
        ).start()
        try:

            async def registered() -> dict[str, Any] | None:
                workers = (await admin.get("/api/workers")).json()
                return workers[0] if workers and workers[0]["state"] == "ready" else None

            slow = await eventually(registered, timeout=20, what="worker to register")
            model = (await admin.post("/api/models", json=local_model())).json()

            async def pending() -> dict[str, Any] | None:
                rows = (await admin.get("/api/model-instances", params={"model_id": model["id"]})).json()
                return rows[0] if rows else None

            instance = await eventually(pending)
            await eventually(lambda: _watching(server), timeout=10, what="the worker's watch stream")
            placed_at = time.monotonic()
            await place(server, instance["id"], slow, ["slow:cuda:0"])

            async def handled() -> dict[str, Any] | None:
                row = (await admin.get(f"/api/model-instances/{instance['id']}")).json()
                return row if row["state"] == "error" else None

            row = await eventually(handled, timeout=5, interval=0.02, what="the worker to act on the assignment")
            assert time.monotonic() - placed_at < 1.0, worker.output()
            # A simulated device never gets an engine, and the instance says why.
            assert "simulated device(s) slow:cuda:0" in row["state_message"]
            assert "--device-inventory" in row["state_message"]
        finally:
            worker.stop()


async def _watching(server: Any) -> bool:
    return bool(server.runtime.bus.subscriber_count >= 1)
