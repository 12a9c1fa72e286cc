"""``gpufleet instances`` and ``gpufleet keys`` against a real server, the CLI run as a subprocess.

One ``gpufleet start --disable-worker`` for the module: a deployment's instances stay ``pending``
there (enough for list, show and the refusals of logs and restart). Logs and restart of a running
instance use the shared real-engine cluster (``engines``; skipped without a llama-server).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from testkit.synthetic import preset, write_model
from tests.support.engine_cluster import Engines, alive
from tests.support.gpufleet_cluster import Cluster
from tests.support.processes import run_cli

pytestmark = pytest.mark.e2e


@dataclass
class Server:
    url: str
    admin: httpx.Client
    key: str  # an admin API key for the CLI

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli([*args, "--server-url", self.url, "--api-key", self.key])

    def json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("cli-instances-keys")
    models = root / "models"
    write_model(models / "llama-tiny.gguf", preset("llama-tiny"))
    cluster = Cluster(root)
    cluster.start_server("--disable-worker", "--allowed-model-dirs", str(models))
    wide = pytest.MonkeyPatch.context()
    wide.__enter__().setenv("COLUMNS", "250")  # rich tables as on a wide terminal: no wrapped names
    try:
        with cluster.admin() as admin:
            key = admin.post("/api/api-keys", json={"name": "cli"}).json()["key"]
            model = {"name": "tiny", "source": "local_path", "local_path": str(models / "llama-tiny.gguf")}
            created = admin.post("/api/models", json={**model, "replicas": 2})
            assert created.status_code == 201, created.text
            yield Server(cluster.url, admin, key)
    finally:
        wide.__exit__(None, None, None)
        for process in reversed(cluster.processes):
            process.kill()


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# --- instances --------------------------------------------------------------------------------


def pending_instances(server: Server) -> list[dict[str, Any]]:
    instances: list[dict[str, Any]] = server.json("instances", "list")
    assert len(instances) == 2, instances  # the deployment's 2 replicas, never placed: no worker
    return instances


def test_list_and_show_instances(server: Server) -> None:
    instances = pending_instances(server)
    assert {i["model_name"] for i in instances} == {"tiny"} and {i["state"] for i in instances} == {"pending"}
    assert server.json("instances", "list", "--model", "tiny") == instances
    table = server.cli("instances", "list")
    assert table.returncode == 0 and all(i["name"] in table.stdout for i in instances)
    assert "pending" in table.stdout and "age" in table.stdout, table.stdout

    first = instances[0]
    assert server.json("instances", "show", first["name"]) == first
    assert server.json("instances", "show", str(first["id"])) == first  # by id as well
    human = server.cli("instances", "show", first["name"])
    assert human.returncode == 0 and f"tiny (id {first['model_id']})" in human.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["instances", "show", "no-such"], "no instance 'no-such'; the instances are: "),
        (["instances", "logs", "999999"], "no instance '999999'"),
        (["instances", "restart", "no-such"], "no instance 'no-such'"),
        (
            ["instances", "list", "--model", "no-such"],
            "no model 'no-such'; the models are: tiny",
        ),
    ],
)
def test_an_unknown_instance_or_deployment_is_bad_usage(server: Server, args: list[str], message: str) -> None:
    result = server.cli(*args)
    assert result.returncode == 2
    assert message in one_error_line(result)


def test_a_pending_instance_has_no_logs_and_nothing_to_restart(server: Server) -> None:
    name = pending_instances(server)[0]["name"]
    logs = server.cli("instances", "logs", name)
    assert logs.returncode == 1
    assert f"instance {name} is pending: no logs yet, it has not been placed on a worker" in one_error_line(logs)
    restart = server.cli("instances", "restart", name)
    assert restart.returncode == 1
    assert "HTTP 409" in one_error_line(restart)
    assert f"instance {name} is pending: not placed on a worker yet, nothing to restart" in restart.stderr


def test_restart_is_for_admins(server: Server) -> None:
    created = server.admin.post(
        "/api/users", json={"username": "restarter", "password": "restarter-password", "role": "user"}
    )
    assert created.status_code == 201, created.text
    session = httpx.post(
        f"{server.url}/api/auth/login",
        json={"username": "restarter", "password": "restarter-password"},
        trust_env=False,
    ).json()["access_token"]
    user_key = httpx.post(
        f"{server.url}/api/api-keys", json={"name": "mine"}, headers={"Authorization": f"Bearer {session}"}
    ).json()["key"]
    try:
        # A user may not even read instances: the name cannot be resolved, and the server says why.
        result = run_cli(["instances", "restart", "1", "--server-url", server.url, "--api-key", user_key])
        assert result.returncode == 1 and "HTTP 403" in one_error_line(result)
    finally:
        server.admin.delete(f"/api/users/{created.json()['id']}")


# --- keys -------------------------------------------------------------------------------------


def test_create_prints_the_key_once_and_it_works(server: Server) -> None:
    result = server.cli("keys", "create", "printed")
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert "\n" not in key and key.startswith("gf_")  # only the key on stdout: KEY=$(gpufleet keys create x)
    assert "store it now, it is not shown again" in result.stderr
    assert httpx.get(f"{server.url}/api/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    listed = {k["name"]: k for k in server.json("keys", "list")}
    assert key.startswith(listed["printed"]["prefix"]) and "key" not in listed["printed"]
    table = server.cli("keys", "list")
    assert table.returncode == 0 and key not in table.stdout and listed["printed"]["prefix"] in table.stdout
    assert server.cli("keys", "delete", "printed").returncode == 0
    assert httpx.get(f"{server.url}/api/models", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_create_update_and_delete_with_limits(server: Server) -> None:
    before = datetime.now(UTC)
    created = server.json(
        "keys",
        "create",
        "limited",
        "--expires-in-days",
        "30",
        "--allowed-models",
        "tiny, other",
        "--requests-per-minute",
        "60",
        "--tokens-per-day",
        "100000",
    )
    assert created["key"].startswith(created["prefix"])
    assert created["allowed_models"] == ["tiny", "other"]
    assert (created["requests_per_minute"], created["tokens_per_day"]) == (60, 100_000)
    expires = datetime.fromisoformat(created["expires_at"])
    # 30 days from the command's run: between the 30 days after `before` and a minute later
    assert before + timedelta(days=30) <= expires <= before + timedelta(days=30, minutes=1)

    updated = server.json("keys", "update", "limited", "--requests-per-minute", "5", "--no-expiry", "--all-models")
    assert updated["id"] == created["id"] and updated["requests_per_minute"] == 5
    assert updated["expires_at"] is None and updated["allowed_models"] is None
    assert updated["tokens_per_day"] == 100_000  # not given: unchanged
    by_id = server.json("keys", "update", str(created["id"]), "--unlimited-tokens")
    assert by_id["tokens_per_day"] is None and by_id["requests_per_minute"] == 5
    table = server.cli("keys", "list")
    assert "5 req/min" in table.stdout

    deleted = server.cli("keys", "delete", "limited")
    assert deleted.returncode == 0 and f"deleted API key limited (id {created['id']}" in deleted.stdout
    assert "limited" not in {k["name"] for k in server.json("keys", "list")}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["keys", "delete", "no-such"], 2, "no API key 'no-such'; the API keys are: cli (see `gpufleet keys list`)"),
        (["keys", "update", "no-such", "--tokens-per-day", "9"], 2, "no API key 'no-such'"),
        (["keys", "update", "cli"], 2, "nothing to change: give --expires-in-days"),
        (["keys", "update", "cli", "--no-expiry", "--expires-in-days", "3"], 2, "--expires-in-days and --no-expiry"),
        (["keys", "create", "x", "--allowed-models", " , "], 2, "--allowed-models needs at least one model name"),
        (["keys", "create", "cli"], 1, "HTTP 409: you already have an API key named 'cli'"),
    ],
)
def test_key_errors(server: Server, args: list[str], code: int, message: str) -> None:
    result = server.cli(*args)
    assert result.returncode == code
    assert message in one_error_line(result)


def test_bad_option_values_are_usage_errors(server: Server) -> None:
    result = server.cli("keys", "create", "x", "--requests-per-minute", "0")
    assert result.returncode == 2 and "--requests-per-minute" in result.stderr


# --- with a running engine --------------------------------------------------------------------


def test_logs_and_restart_of_a_running_instance(engines: Engines) -> None:
    key = engines.admin.post("/api/api-keys", json={"name": "instances-cli"}).json()["key"]
    common = ["--server-url", engines.cluster.url, "--api-key", key]
    model = engines.deploy("tiny-restart", engines.models / "llama-tiny.gguf")
    try:
        [running] = engines.wait_running(model["id"], 1)
        logs = run_cli(["instances", "logs", running["name"], "--tail", "3", *common])
        assert logs.returncode == 0, logs.stderr
        assert 1 <= len(logs.stdout.splitlines()) <= 3

        result = run_cli(["instances", "restart", running["name"], "--json", *common])
        assert result.returncode == 0, result.stderr
        restarted = json.loads(result.stdout)
        assert restarted["id"] == running["id"] and restarted["state"] == "pending"
        assert restarted["state_message"].startswith("restarted by admin")

        # Placed again and running on a fresh engine; the old one is stopped.
        [again] = engines.wait(
            model["id"],
            lambda xs: len(xs) == 1 and xs[0]["state"] == "running" and xs[0]["pid"] != running["pid"],
            "the restarted instance running on a new engine",
        )
        assert again["id"] == running["id"] and not alive(running["pid"])
    finally:
        engines.admin.delete(f"/api/models/{model['id']}")
