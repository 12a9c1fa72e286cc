"""A cluster of real ``gpufleet start`` processes on loopback ports, for end-to-end tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import GpufleetProcess, ports
from tests.support.server import ADMIN_PASSWORD

HEARTBEAT = 1.0


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.server_port, self.worker_port = ports(2)
        self.url = f"http://127.0.0.1:{self.server_port}"
        self.processes: list[GpufleetProcess] = []

    def start_server(self, *extra: str, env: dict[str, str] | None = None) -> GpufleetProcess:
        process = GpufleetProcess(
            [
                "--host",
                "127.0.0.1",
                "--port",
                str(self.server_port),
                "--data-dir",
                str(self.root / "server"),
                "--worker-port",
                str(self.worker_port),
                "--worker-name",
                "main",
                "--heartbeat-interval",
                str(HEARTBEAT),
                "--bootstrap-password",
                ADMIN_PASSWORD,
                *extra,
            ],
            self.root / "server.log",
            env,
        ).start()
        self.processes.append(process)
        process.wait_http(f"{self.url}/healthz")
        return process

    def start_worker(
        self, name: str, *extra: str, data_dir: str | None = None, server_url: str | None = None
    ) -> GpufleetProcess:
        port = ports(1)[0]
        token = (self.root / "server" / "token").read_text().strip()
        process = GpufleetProcess(
            [
                "--server-url",
                self.url,
                "--token",
                token,
                "--host",
                "127.0.0.1",
                "--worker-name",
                name,
                "--worker-port",
                str(port),
                "--data-dir",
                str(self.root / (data_dir or name)),
                "--heartbeat-interval",
                str(HEARTBEAT),
                *extra,
            ],
            self.root / f"{data_dir or name}.log",
        ).start()
        self.processes.append(process)
        return process

    def admin(self) -> httpx.Client:
        token = httpx.post(
            f"{self.url}/api/auth/login",
            json={"username": "admin", "password": ADMIN_PASSWORD},
            trust_env=False,
        ).json()["access_token"]
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, trust_env=False)

    def worker(self, admin: httpx.Client, name: str) -> dict[str, Any] | None:
        return next((w for w in admin.get("/api/workers").json() if w["name"] == name), None)

    def wait_state(self, admin: httpx.Client, name: str, state: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        worker = None
        while time.monotonic() < deadline:
            worker = self.worker(admin, name)
            if worker is not None and worker["state"] == state:
                return worker
            time.sleep(0.05)
        logs = "\n".join(p.output()[-3000:] for p in self.processes)
        raise AssertionError(f"worker {name} not {state} within {timeout}s: {worker}\n{logs}")
