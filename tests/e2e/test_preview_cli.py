"""``gpufleet models preview`` against a real server with a simulated GPU worker."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from gpufleet.common.units import GiB
from testkit.synthetic import preset, write_model
from tests.support.builders import H100, inventory
from tests.support.processes import GpufleetProcess, ports, run_cli
from tests.support.server import ADMIN_PASSWORD

pytestmark = pytest.mark.e2e


def test_preview_from_the_command_line(tmp_path: Path) -> None:
    model = write_model(tmp_path / "llama-8b.gguf", preset("llama-3.1-8b"), "q8_0", sparse=True)
    big = write_model(tmp_path / "llama-405b.gguf", preset("llama-3.1-405b"), "f16", sparse=True)
    server_port, worker_port = ports(2)
    url = f"http://127.0.0.1:{server_port}"
    gpus = inventory(tmp_path / "gpus.json", [H100, H100], cpu={"cores": 32, "memory": 256 * GiB})
    server = GpufleetProcess(
        [
            "--host",
            "127.0.0.1",
            "--port",
            str(server_port),
            "--worker-port",
            str(worker_port),
            "--data-dir",
            str(tmp_path / "data"),
            "--bootstrap-password",
            ADMIN_PASSWORD,
            "--device-inventory",
            str(gpus),
            "--worker-name",
            "sim",
            "--allowed-model-dirs",
            str(tmp_path),  # the generated model lives here, outside the data dir and home
        ],
        tmp_path / "server.log",
    ).start()
    try:
        server.wait_http(f"{url}/healthz")
        token = httpx.post(f"{url}/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        key = httpx.post(f"{url}/api/api-keys", json={"name": "cli"}, headers=headers).json()["key"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            workers = httpx.get(f"{url}/api/workers", headers=headers).json()
            if workers and workers[0]["state"] == "ready":
                break
            time.sleep(0.2)
        common = ["--server", url, "--api-key", key]
        result = run_cli(["models", "preview", "--local-path", str(model), "--replicas", "2", *common])
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("single_gpu") == 2 and "sim:cuda:0" in result.stdout
        assert "2 replica(s) fit: sim, sim" in result.stdout
        as_json = json.loads(run_cli(["models", "preview", "--local-path", str(model), "--json", *common]).stdout)
        assert as_json["schedulable"] and as_json["placements"][0]["claim"]["total_layers"] == 33
        nothing = run_cli(["models", "preview", "--local-path", str(big), *common])
        assert nothing.returncode == 3 and "0/1 workers fit: 1 insufficient VRAM" in nothing.stdout
        refused = run_cli(["models", "preview", "--local-path", str(model), "--server", url, "--api-key", "gf_bad"])
        assert refused.returncode == 1 and "HTTP 401" in refused.stderr
    finally:
        server.stop()
