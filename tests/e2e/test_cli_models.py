"""``gpufleet models list|show|deploy|preview|scale|update|delete`` against a real server.

One ``gpufleet start`` for the module, with an embedded worker offering two simulated H100s
(``--device-inventory``) and a sparse generated GGUF in ``--allowed-model-dirs``. The CLI runs as
a subprocess; its ``--json`` is parsed and its exit codes checked: 0 done, 1 the server refused
(its message on one line), 2 bad usage (an unknown name lists the known ones).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpufleet.common.units import GiB
from testkit.synthetic import preset, write_model
from tests.support.builders import H100, inventory
from tests.support.processes import GpufleetProcess, ports, run_cli
from tests.support.server import ADMIN_PASSWORD

pytestmark = pytest.mark.e2e


@dataclass
class Fleet:
    url: str
    key: str
    model: Path  # llama-3.1-8b q8_0, about 8.5 GB: one fits an H100 (80 GB) many times over
    root: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(["models", *args, "--server", self.url, "--api-key", self.key])

    def json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def named(self, name: str) -> dict[str, Any] | None:
        listed: list[dict[str, Any]] = self.json("list")
        return next((m for m in listed if m["name"] == name), None)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("cli-models")
    models = root / "models"
    models.mkdir()
    model = write_model(models / "llama-8b.gguf", preset("llama-3.1-8b"), "q8_0", sparse=True)
    server_port, worker_port = ports(2)
    url = f"http://127.0.0.1:{server_port}"
    gpus = inventory(root / "gpus.json", [H100, H100], cpu={"cores": 32, "memory": 256 * GiB})
    server = GpufleetProcess(
        [
            *("--host", "127.0.0.1", "--port", str(server_port), "--worker-port", str(worker_port)),
            *("--data-dir", str(root / "data"), "--bootstrap-password", ADMIN_PASSWORD),
            *("--device-inventory", str(gpus), "--worker-name", "sim", "--allowed-model-dirs", str(models)),
        ],
        root / "server.log",
    ).start()
    try:
        server.wait_http(f"{url}/healthz")
        token = httpx.post(f"{url}/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        key = httpx.post(f"{url}/api/api-keys", json={"name": "cli"}, headers=headers).json()["key"]
        deadline = time.monotonic() + 20
        while not any(w["state"] == "ready" for w in httpx.get(f"{url}/api/workers", headers=headers).json()):
            assert time.monotonic() < deadline, f"the simulated worker is not ready:\n{server.output()[-3000:]}"
            time.sleep(0.2)
        yield Fleet(url, key, model, root)
    finally:
        server.stop()


def test_deploy_list_show_scale_update_delete(fleet: Fleet) -> None:
    created = fleet.json(
        *("deploy", "llama-8b", "--source", "local", "--path", str(fleet.model)),
        *("--replicas", "1", "--placement-strategy", "binpack", "--no-distributed", "--ctx-size", "4096"),
        *("--backend-parameter", "--parallel 2", "--gpu-selector", "sim:cuda:0,sim:cuda:1"),
    )
    assert created["source"] == "local_path" and created["local_path"] == str(fleet.model)
    assert (created["replicas"], created["placement_strategy"], created["ctx_size"]) == (1, "binpack", 4096)
    assert created["distributed_inference_across_workers"] is False
    assert created["backend_parameters"] == ["--parallel 2"]
    assert created["gpu_selector"] == {"device_ids": ["sim:cuda:0", "sim:cuda:1"]}
    assert created["placeable_replicas"] == 1 and created["warnings"] == []

    listed = fleet.named("llama-8b")
    assert listed is not None and listed["id"] == created["id"]
    table = fleet.cli("list")
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if "llama-8b" in line)  # the path wraps at 80 columns
    assert "local" in row and ("0/1" in row or "1/1" in row), table.stdout

    shown = fleet.json("show", "llama-8b")
    by_id = fleet.json("show", str(created["id"]))
    assert shown["id"] == by_id["id"] == created["id"] and shown["ctx_size"] == 4096
    assert all(i["model_id"] == created["id"] for i in shown["instances"])
    # The simulated GPUs cannot run an engine: the instance fails, and show warns with its reason.
    deadline = time.monotonic() + 30
    while not any("failed: cannot start an engine on simulated" in w for w in shown["warnings"]):
        assert time.monotonic() < deadline, shown
        shown = fleet.json("show", "llama-8b")
    readable = fleet.cli("show", "llama-8b")
    assert readable.returncode == 0 and "placement_strategy" in readable.stdout and "binpack" in readable.stdout

    scaled = fleet.json("scale", "llama-8b", "2")
    assert scaled["replicas"] == 2 and scaled["placeable_replicas"] == 2

    # Only what is given changes: the context size; replicas, strategy and selector stay.
    updated = fleet.json("update", "llama-8b", "--ctx-size", "8192")
    assert (updated["ctx_size"], updated["replicas"], updated["placement_strategy"]) == (8192, 2, "binpack")
    assert updated["gpu_selector"] == created["gpu_selector"]
    wrong = fleet.cli("update", "llama-8b", "--file", "*.gguf")
    assert wrong.returncode == 2 and "--file does not apply to --source local (it takes --path)" in wrong.stderr
    nothing = fleet.cli("update", "llama-8b")
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr

    unasked = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpufleet",
            "models",
            "delete",
            "llama-8b",
            "--server",
            fleet.url,
            "--api-key",
            fleet.key,
        ],
        stdin=subprocess.DEVNULL,  # no terminal to ask on: it must refuse, not guess
        capture_output=True,
        text=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if not k.startswith("GPUFLEET_")},
    )
    assert unasked.returncode == 2 and "give --yes to delete model llama-8b" in unasked.stderr
    deleted = fleet.cli("delete", "llama-8b", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert fleet.named("llama-8b") is None
    gone = fleet.cli("show", "llama-8b")
    assert gone.returncode == 2 and "no model 'llama-8b'" in gone.stderr


def test_on_demand_deployment_shows_its_bounds(fleet: Fleet) -> None:
    created = fleet.json(
        *("deploy", "on-call", "--path", str(fleet.model)),  # --path alone implies --source local
        *("--min-replicas", "0", "--max-replicas", "2", "--idle-timeout", "60", "--priority", "5"),
        *("--max-concurrent-requests", "4", "--max-queue", "10", "--queue-timeout", "30"),
    )
    assert (created["min_replicas"], created["max_replicas"], created["replicas"]) == (0, 2, 0)
    assert (created["idle_timeout"], created["priority"], created["max_concurrent_requests"]) == (60, 5, 4)
    assert (created["max_queue"], created["queue_timeout"]) == (10, 30)
    table = fleet.cli("list")
    row = next(line for line in table.stdout.splitlines() if "on-call" in line)
    assert "0/0" in row and "0–2 on demand" in row  # running/target, bounds

    # 3 is above max_replicas 2: the server's 422, on one line, exit 1.
    refused = fleet.cli("scale", "on-call", "3")
    assert refused.returncode == 1, refused.stderr
    assert "replicas (3) must be between min_replicas (0) and max_replicas (2)" in refused.stderr
    assert refused.stderr.strip().count("\n") == 0
    assert fleet.json("scale", "on-call", "1")["replicas"] == 1

    # --no-bounds makes it a fixed deployment again, keeping its current replica count.
    both = fleet.cli("update", "on-call", "--no-bounds", "--max-replicas", "3")
    assert both.returncode == 2 and "do not give --min-replicas or --max-replicas too" in both.stderr
    fixed = fleet.json("update", "on-call", "--no-bounds")
    assert (fixed["min_replicas"], fixed["max_replicas"], fixed["replicas"]) == (None, None, 1)
    assert fleet.cli("delete", "on-call", "--yes").returncode == 0


@pytest.mark.parametrize(
    ("source", "fields"),
    [
        (
            ["--source", "hf", "--repo", "org/tiny-GGUF", "--file", "*Q4_K_M.gguf"],
            {"source": "huggingface", "huggingface_repo_id": "org/tiny-GGUF", "huggingface_filename": "*Q4_K_M.gguf"},
        ),
        (
            ["--source", "modelscope", "--repo", "org/tiny", "--file", "tiny.gguf"],
            {"source": "modelscope", "modelscope_model_id": "org/tiny", "modelscope_file_path": "tiny.gguf"},
        ),
        (
            ["--source", "ollama", "--name", "llama3.2:1b"],
            {"source": "ollama_library", "ollama_library_model_name": "llama3.2:1b"},
        ),
    ],
)
def test_each_source_maps_to_its_fields(fleet: Fleet, source: list[str], fields: dict[str, str]) -> None:
    # No replicas: nothing is downloaded (this machine has no internet), only the spec is stored.
    created = fleet.json("deploy", "remote", *source, "--replicas", "0")
    try:
        assert {k: created[k] for k in fields} == fields
    finally:
        assert fleet.cli("delete", "remote", "--yes").returncode == 0


def test_preview_takes_the_deploy_options(fleet: Fleet, tmp_path: Path) -> None:
    placed = fleet.json("preview", "--source", "local", "--path", str(fleet.model), "--gpu-selector", "sim:cuda:1")
    assert placed["schedulable"] and placed["placements"][0]["device_ids"] == ["sim:cuda:1"]
    body = tmp_path / "spec.json"
    body.write_text(json.dumps({"name": "from-file", "source": "local_path", "local_path": str(fleet.model)}))
    two = fleet.json("preview", "--from-json", str(body), "--replicas", "2")  # the options override the file
    assert len(two["placements"]) == 2
    created = fleet.json("deploy", "--from-json", str(body), "--replicas", "0")
    assert (created["name"], created["replicas"]) == ("from-file", 0)
    assert fleet.cli("delete", "from-file", "--yes").returncode == 0


def test_bad_usage_exits_2_and_refusals_exit_1(fleet: Fleet) -> None:
    # --wait follows it like `models wait`: with no replica asked for, it is done at once.
    kept = fleet.cli("deploy", "kept", "--path", str(fleet.model), "--replicas", "0", "--wait", "--wait-timeout", "20")
    assert kept.returncode == 0, kept.stderr
    assert "deployed kept" in kept.stdout and "kept: 0/0 instance(s) running" in kept.stdout
    # With --json, stdout is one JSON document (the deployment once it runs); progress goes to stderr.
    piped = fleet.cli("deploy", "piped", "--path", str(fleet.model), "--replicas", "0", "--wait", "--json")
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["name"] == "piped"
    assert "piped: 0/0 instance(s) running" in piped.stderr
    assert fleet.cli("delete", "piped", "--yes").returncode == 0
    try:
        for command in (["show", "nope"], ["scale", "nope", "1"], ["update", "nope", "--ctx-size", "1"]):
            unknown = fleet.cli(*command)
            assert unknown.returncode == 2 and "no model 'nope'; the models are: kept" in unknown.stderr
        mixed = fleet.cli("deploy", "x", "--source", "ollama", "--path", str(fleet.model))
        assert mixed.returncode == 2 and "--path does not apply to --source ollama (it takes --name)" in mixed.stderr
        bounds = fleet.cli("deploy", "x", "--path", str(fleet.model), "--min-replicas", "3", "--max-replicas", "1")
        assert bounds.returncode == 1 and "min_replicas (3) must not be above max_replicas (1)" in bounds.stderr
        twice = fleet.cli("deploy", "kept", "--path", str(fleet.model))
        assert twice.returncode == 1 and "already exists" in twice.stderr
        assert fleet.named("x") is None
    finally:
        assert fleet.cli("delete", "kept", "--yes").returncode == 0
