"""A real cluster of ``gpufleet start`` processes on loopback: join, leave, rejoin, restart."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.builders import H100, inventory
from tests.support.gpufleet_cluster import HEARTBEAT, Cluster
from tests.support.processes import GpufleetProcess, ports

pytestmark = pytest.mark.e2e


def test_start_gives_a_server_with_a_ready_embedded_worker(cluster: Cluster, tmp_path: Path) -> None:
    server = GpufleetProcess(
        [
            "--host",
            "127.0.0.1",
            "--port",
            str(cluster.server_port),
            "--data-dir",
            str(tmp_path / "fresh"),
            "--worker-port",
            str(cluster.worker_port),
        ],
        tmp_path / "fresh.log",
    ).start()
    cluster.processes.append(server)
    server.wait_http(f"{cluster.url}/healthz")
    password_file = tmp_path / "fresh" / "initial_admin_password"
    deadline = time.monotonic() + 10
    while "Login:" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"password in {password_file}" in server.output()
    assert f"{cluster.url}/v1" in server.output()
    password = password_file.read_text().strip()
    token = httpx.post(
        f"{cluster.url}/api/auth/login", json={"username": "admin", "password": password}, trust_env=False
    ).json()["access_token"]
    with httpx.Client(base_url=cluster.url, headers={"Authorization": f"Bearer {token}"}, trust_env=False) as admin:
        assert admin.get("/api/auth/me").json()["must_change_password"] is True
        deadline = time.monotonic() + 20
        workers: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            workers = admin.get("/api/workers").json()
            if workers and workers[0]["state"] == "ready":
                break
            time.sleep(0.1)
        assert len(workers) == 1 and workers[0]["state"] == "ready", workers
        worker = workers[0]
        assert worker["ip"] == "127.0.0.1" and worker["port"] == cluster.worker_port
        assert worker["memory_total"] > 0 and worker["cpu_cores"] >= 1
        assert worker["labels"]["os"] == "linux" and worker["labels"]["gpu-vendor"] == "none"
        cpu = worker["devices"][-1]
        assert cpu["type"] == "cpu" and cpu["id"].endswith(":cpu:0") and cpu["simulated"] is False
        metrics = httpx.get(f"{cluster.url}/metrics", trust_env=False).text
        assert 'gpufleet_workers{state="ready"} 1.0' in metrics
        assert f'gpufleet_device_memory_bytes{{device="{cpu["id"]}",kind="total",worker="{worker["name"]}"}}' in metrics
        deadline = time.monotonic() + 5  # the worker learns its state from its next heartbeat's answer
        worker_metrics = ""
        while 'gpufleet_workers{state="ready"} 1.0' not in worker_metrics and time.monotonic() < deadline:
            worker_metrics = httpx.get(f"http://127.0.0.1:{cluster.worker_port}/metrics", trust_env=False).text
            time.sleep(0.1)
        assert 'kind="used"' in worker_metrics and 'gpufleet_workers{state="ready"} 1.0' in worker_metrics
    assert server.stop() == 0


def test_workers_join_leave_rejoin_and_survive_a_server_restart(cluster: Cluster, tmp_path: Path) -> None:
    server = cluster.start_server()
    gpus = inventory(tmp_path / "h100.json", [H100, H100], cpu={"cores": 64, "memory": 512 * 2**30})
    with cluster.admin() as admin:
        cluster.wait_state(admin, "main", "ready")
        gpu_worker = cluster.start_worker("gpu1", "--device-inventory", str(gpus), "--labels", "zone=eu,tier=gold")
        joined = cluster.wait_state(admin, "gpu1", "ready")
        assert [d["id"] for d in joined["devices"]] == ["gpu1:cuda:0", "gpu1:cuda:1", "gpu1:cpu:0"]
        assert joined["labels"] == {
            "zone": "eu",
            "tier": "gold",
            "os": "linux",
            "arch": joined["arch"],
            "gpu-vendor": "nvidia",
        }
        assert joined["vram_total"] == 160 * 2**30 and joined["cpu_cores"] == 64
        assert all(d["simulated"] for d in joined["devices"])

        # kill -9: no goodbye; the server notices within 3 heartbeat intervals of its own clock.
        gpu_worker.kill()
        killed_at = time.monotonic()
        lost = cluster.wait_state(admin, "gpu1", "not_ready", timeout=3 * HEARTBEAT + 2)
        assert time.monotonic() - killed_at <= 3 * HEARTBEAT + 1.5
        assert "no heartbeat" in lost["state_message"]

        # Restart with the stored credential: the same worker, not a name clash.
        again = cluster.start_worker("gpu1", "--device-inventory", str(gpus))
        back = cluster.wait_state(admin, "gpu1", "ready")
        assert back["id"] == joined["id"]
        assert "rejoined as worker gpu1" in again.output()

        # A clean stop says goodbye: not_ready at once.
        stopped_at = time.monotonic()
        assert again.stop() == 0
        gone = cluster.wait_state(admin, "gpu1", "not_ready", timeout=HEARTBEAT * 3)
        assert time.monotonic() - stopped_at < HEARTBEAT * 3
        assert "shut down" in gone["state_message"]
        cluster.start_worker("gpu1", "--device-inventory", str(gpus))
        cluster.wait_state(admin, "gpu1", "ready")

        # Another machine with the same name but no credential is a clash, said clearly.
        clash = cluster.start_worker("gpu1", "--device-inventory", str(gpus), data_dir="elsewhere")
        assert clash.wait_exit() == 1
        assert "a worker named 'gpu1' is already registered" in clash.output()
        cluster.processes.remove(clash)

    # Server restart: everything is still there, and the workers come back to ready.
    assert server.stop() == 0
    cluster.start_server()
    with cluster.admin() as admin:
        assert {w["name"] for w in admin.get("/api/workers").json()} == {"main", "gpu1"}
        cluster.wait_state(admin, "gpu1", "ready")
        cluster.wait_state(admin, "main", "ready")


def test_a_worker_the_server_cannot_reach_is_unreachable(cluster: Cluster) -> None:
    cluster.start_server("--disable-worker")
    # It binds 127.0.0.1 but tells the server to reach it at 127.0.0.3: heartbeats arrive, probes fail.
    cluster.start_worker("island", "--worker-ip", "127.0.0.3")
    with cluster.admin() as admin:
        worker = cluster.wait_state(admin, "island", "unreachable")
        assert "cannot reach the worker at 127.0.0.3" in worker["state_message"]
        assert worker["heartbeat_at"] is not None


def test_a_worker_fails_over_to_the_next_server_url(cluster: Cluster) -> None:
    cluster.start_server("--disable-worker")
    dead = f"http://127.0.0.1:{ports(1)[0]}"  # nothing listens there
    cluster.start_worker("patient", server_url=f"{dead},{cluster.url}")
    with cluster.admin() as admin:
        cluster.wait_state(admin, "patient", "ready")


def test_a_worker_retries_a_server_that_answers_503(cluster: Cluster) -> None:
    """A proxy without a backend (or a restarting server) answers 5xx: the worker moves on, it does not die."""
    import http.server
    import threading

    class Unavailable(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(503)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"detail": "upstream restarting"}')

        do_GET = do_POST

        def log_message(self, *_: object) -> None:
            return

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        cluster.start_server("--disable-worker")
        worker = cluster.start_worker("steady", server_url=f"http://127.0.0.1:{proxy.server_port},{cluster.url}")
        with cluster.admin() as admin:
            cluster.wait_state(admin, "steady", "ready")
        assert worker.process is not None and worker.process.poll() is None
    finally:
        proxy.shutdown()
