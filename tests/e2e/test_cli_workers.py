"""``gpufleet workers …`` and ``gpufleet devices list`` against a real server, through the real CLI.

One server per module: its embedded worker ``sim`` has two simulated H100s (``--device-inventory``),
and a second worker ``spare`` (one simulated GPU, no process behind it) is registered through the
API with the cluster token, so there is one worker to delete that will not register again. The
tests run in file order; the deletion comes last.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from gpufleet.common.units import GiB
from tests.support.builders import H100, inventory, worker_registration
from tests.support.processes import GpufleetProcess, ports, run_cli
from tests.support.server import ADMIN_PASSWORD

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Server:
    url: str
    key: str
    admin: httpx.Client  # the admin's session, to check what the CLI did through the API

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli([*args, "--server", self.url, "--api-key", self.key])

    def cli_json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def worker(self, name: str) -> dict[str, Any]:
        workers = self.admin.get("/api/workers").json()
        return next(w for w in workers if w["name"] == name)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("cli-workers")
    server_port, worker_port = ports(2)
    url = f"http://127.0.0.1:{server_port}"
    gpus = inventory(tmp / "gpus.json", [H100, H100], cpu={"cores": 32, "memory": 256 * GiB})
    args = ["--host", "127.0.0.1", "--port", str(server_port), "--worker-port", str(worker_port)]
    args += ["--data-dir", str(tmp / "data"), "--bootstrap-password", ADMIN_PASSWORD]
    process = GpufleetProcess([*args, "--device-inventory", str(gpus), "--worker-name", "sim"], tmp / "server.log")
    process.start()
    wide = pytest.MonkeyPatch()
    wide.setenv("COLUMNS", "250")  # the CLI's tables, read from a pipe, are as wide as a terminal could be
    try:
        process.wait_http(f"{url}/healthz")
        token = httpx.post(f"{url}/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token['access_token']}"}) as admin:
            key = admin.post("/api/api-keys", json={"name": "cli"}).json()["key"]
            cluster_token = admin.get("/api/workers/join").json()["token"]
            registered = httpx.post(
                f"{url}/api/workers/register",
                json=worker_registration("spare", gpus=1),
                headers={"Authorization": f"Bearer {cluster_token}"},
            )
            assert registered.status_code == 200, registered.text
            running = Server(url, key, admin)
            deadline = time.monotonic() + 20
            while running.worker("sim")["state"] != "ready":
                assert time.monotonic() < deadline, process.output()[-3000:]
                time.sleep(0.2)
            yield running
    finally:
        wide.undo()
        process.stop()


def test_list_and_show_print_the_servers_objects(server: Server) -> None:
    workers = server.cli_json("workers", "list")
    assert [w["name"] for w in workers] == ["sim", "spare"]  # ordered by name
    sim = workers[0]
    assert sim["state"] == "ready" and sim["gpu_count"] == 2
    assert sim["vram_total"] == 160 * GiB  # 2 x 80 GiB
    assert {"os", "arch", "gpu-vendor"} <= set(sim["labels"])
    table = server.cli("workers", "list")
    assert table.returncode == 0, table.stderr
    assert "sim" in table.stdout and "spare" in table.stdout and "160.0 GiB" in table.stdout
    by_name = server.cli_json("workers", "show", "sim")
    by_id = server.cli_json("workers", "show", str(sim["id"]))
    assert by_name["id"] == by_id["id"] == sim["id"]
    assert [d["id"] for d in by_name["devices"] if d["type"] == "cuda"] == ["sim:cuda:0", "sim:cuda:1"]
    shown = server.cli("workers", "show", "sim")
    assert shown.returncode == 0, shown.stderr
    assert "sim:cuda:1" in shown.stdout and "NVIDIA H100 80GB HBM3" in shown.stdout


def test_devices_list_with_and_without_a_worker(server: Server) -> None:
    devices = server.cli_json("devices", "list")
    gpus = {d["id"]: d for d in devices if d["type"] == "cuda"}
    assert set(gpus) == {"sim:cuda:0", "sim:cuda:1", "spare:cuda:0"}
    assert all(d["simulated"] and d["memory_total"] == 80 * GiB for d in gpus.values())
    only_sim = server.cli_json("devices", "list", "--worker", "sim")
    assert {d["worker_name"] for d in only_sim} == {"sim"} and len(only_sim) == 3  # 2 GPUs + the CPU
    table = server.cli("devices", "list", "--worker", "spare")
    assert table.returncode == 0, table.stderr
    assert "spare:cuda:0" in table.stdout and "80.0 GiB" in table.stdout and "sim:" not in table.stdout


def test_labels_are_set_and_removed(server: Server) -> None:
    added = server.cli("workers", "label", "sim", "zone=a", "tier=gold")
    assert added.returncode == 0, added.stderr
    assert "zone=a" in added.stdout.splitlines() and "tier=gold" in added.stdout.splitlines()
    labels = server.worker("sim")["labels"]
    assert labels["zone"] == "a" and labels["tier"] == "gold" and "os" in labels
    changed = server.cli_json("workers", "label", "sim", "zone-", "tier=silver")
    assert "zone" not in changed["labels"] and changed["labels"]["tier"] == "silver"
    labels = server.worker("sim")["labels"]
    assert "zone" not in labels and labels["tier"] == "silver"
    automatic = server.cli("workers", "label", "sim", "os-")
    assert automatic.returncode == 0 and "kept os" in automatic.stderr
    assert "os" in server.worker("sim")["labels"]


@pytest.mark.parametrize(
    ("changes", "code", "message"),
    [
        # the whole grammar is table-tested in tests/unit/test_label_changes.py
        (["zone"], 2, "label 'zone' must be key=value (to set it) or key- (to remove it)"),
        (["os=windows"], 1, "HTTP 422"),  # set from the hardware: the server refuses
    ],
)
def test_bad_label_changes(server: Server, changes: list[str], code: int, message: str) -> None:
    before = server.worker("sim")["labels"]
    result = server.cli("workers", "label", "sim", *changes)
    assert result.returncode == code, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert server.worker("sim")["labels"] == before


def test_drain_and_undrain(server: Server) -> None:
    drained = server.cli("workers", "drain", "sim")
    assert drained.returncode == 0, drained.stderr
    assert "nothing new is placed there (state: maintenance)" in drained.stdout
    assert server.worker("sim")["state"] == "maintenance"
    listed = {w["name"]: w for w in server.cli_json("workers", "list")}
    assert listed["sim"]["state"] == "maintenance" and listed["sim"]["maintenance"] is True
    undrained = server.cli_json("workers", "undrain", "sim")
    assert undrained["state"] == "ready" and server.worker("sim")["state"] == "ready"
    assert undrained["maintenance"] is False


@pytest.mark.parametrize(
    "args",
    [
        ["workers", "show", "nope"],
        ["workers", "drain", "999"],  # neither a name nor an id
        ["devices", "list", "--worker", "nope"],
    ],
)
def test_an_unknown_worker_is_bad_usage(server: Server, args: list[str]) -> None:
    result = server.cli(*args)
    assert result.returncode == 2, result.stderr
    assert "the workers are: sim, spare (see `gpufleet workers list`)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_wrong_api_key_is_refused(server: Server) -> None:
    for args in (["workers", "list"], ["devices", "list"]):
        result = run_cli([*args, "--server", server.url, "--api-key", "gf_wrong"])
        assert result.returncode == 1 and "HTTP 401" in result.stderr, result.stderr


def test_delete_asks_unless_yes(server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUFLEET_")}
    asked = subprocess.run(
        [sys.executable, "-m", "gpufleet", "workers", "delete", "spare", "--server", server.url],
        env={**env, "GPUFLEET_API_KEY": server.key},
        stdin=subprocess.DEVNULL,  # no terminal to ask on
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert asked.returncode == 2 and "give --yes to delete worker spare" in asked.stderr
    assert "spare" in [w["name"] for w in server.cli_json("workers", "list")]
    deleted = server.cli("workers", "delete", "spare", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert [w["name"] for w in server.admin.get("/api/workers").json()] == ["sim"]
    gone = server.cli("workers", "show", "spare")
    assert gone.returncode == 2 and "the workers are: sim (see" in gone.stderr
