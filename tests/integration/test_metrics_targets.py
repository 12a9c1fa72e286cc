"""``GET /api/metrics/targets``: Prometheus HTTP service discovery, on SQLite and PostgreSQL.

Who may read it: admins and API keys (a user's too: what a Prometheus server holds); a user's
session gets 403 and an anonymous caller 401. What it lists: this server at the address it was
reached by, then every worker at its registered ip:port with its name and id as labels.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.builders import register_worker
from tests.support.server import running_server


async def test_targets_list_the_server_and_every_worker(tmp_path: Path, database_url: str) -> None:
    async with running_server(tmp_path, database_url) as server, await server.admin() as admin:
        one = (await register_worker(admin, server.token, "gpu-a", ip="10.0.0.7", port=8081))["worker"]
        two = (await register_worker(admin, server.token, "gpu-b", ip="fd00::9", port=9000))["worker"]

        response = await admin.get("/api/metrics/targets")
        assert response.status_code == 200, response.text
        host_port = server.url.removeprefix("http://")
        assert response.json() == [
            {
                "targets": [host_port],
                "labels": {"role": "server", "__metrics_path__": "/metrics", "__scheme__": "http"},
            },
            {
                "targets": ["10.0.0.7:8081"],
                "labels": {
                    "role": "worker",
                    "worker": "gpu-a",
                    "worker_id": str(one["id"]),
                    "__metrics_path__": "/metrics",
                    "__scheme__": "http",
                },
            },
            {
                "targets": ["[fd00::9]:9000"],
                "labels": {
                    "role": "worker",
                    "worker": "gpu-b",
                    "worker_id": str(two["id"]),
                    "__metrics_path__": "/metrics",
                    "__scheme__": "http",
                },
            },
        ]


async def test_only_admins_and_api_keys_read_the_targets(tmp_path: Path, database_url: str) -> None:
    async with running_server(tmp_path, database_url) as server, await server.admin() as admin:
        await register_worker(admin, server.token, "gpu-a")
        created = await admin.post("/api/users", json={"username": "ops", "password": "ops-password-1", "role": "user"})
        assert created.status_code == 201, created.text
        admin_key = (await admin.post("/api/api-keys", json={"name": "prometheus"})).json()["key"]
        async with server.client(await server.login("ops", "ops-password-1")) as user_session:
            user_key = (await user_session.post("/api/api-keys", json={"name": "prometheus"})).json()["key"]
            refused = await user_session.get("/api/metrics/targets")
            assert refused.status_code == 403, refused.text
            assert "admins and API keys" in refused.json()["detail"]
        async with server.client() as anonymous:
            assert (await anonymous.get("/api/metrics/targets")).status_code == 401
        for key in (admin_key, user_key):
            async with server.client(key) as prometheus:
                answer = await prometheus.get("/api/metrics/targets")
                assert answer.status_code == 200, answer.text
                assert [g["labels"]["role"] for g in answer.json()] == ["server", "worker"]
        async with server.client(server.token) as cluster:  # the registration token is no monitoring key
            assert (await cluster.get("/api/metrics/targets")).status_code == 403
