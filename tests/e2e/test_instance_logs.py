"""Instance logs through the worker, with real engines: ``GET /api/model-instances/{id}/logs``.

One ``gpufleet start`` (server + embedded worker) running llama-server on a tiny generated model;
the server relays the log from the worker's own API, which only the server (with the token the
worker registered) may call.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gpufleet.common.worker_api_token import server_bearer
from tests.support.engine_cluster import Engines, chat
from tests.support.processes import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture
def running(engines: Engines) -> Iterator[dict[str, Any]]:
    """A running instance of ``tiny-logs``; the deployment is deleted after the test."""
    model = engines.deploy("tiny-logs", engines.models / "llama-tiny.gguf")
    try:
        [instance] = engines.wait_running(model["id"], 1)
        yield instance
    finally:
        engines.admin.delete(f"/api/models/{model['id']}")


def read_until(lines: Iterator[str], needle: str) -> list[str]:
    """Lines from a followed log up to the first that contains ``needle`` (the read timeout bounds the wait)."""
    seen: list[str] = []
    for line in lines:
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"the followed log ended before {needle!r}: {seen[-20:]}")


def test_the_tail_of_a_running_instances_log(engines: Engines, running: dict[str, Any]) -> None:
    url = f"/api/model-instances/{running['id']}/logs"
    answer = engines.admin.get(url, params={"tail": 5})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    lines = answer.text.splitlines()
    assert 1 <= len(lines) <= 5
    on_disk = (engines.cluster.root / "server" / "logs" / "instances" / f"{running['name']}.log").read_text()
    assert all(line in on_disk.splitlines() for line in lines)  # llama-server's own lines
    everything = engines.admin.get(url, params={"tail": 10_000}).text
    assert "llama-tiny.gguf" in everything  # the engine's start-up, as it loaded the model
    assert engines.admin.get(url, params={"tail": 10_001}).status_code == 422


def test_following_shows_what_the_engine_writes_next(engines: Engines, running: dict[str, Any]) -> None:
    url = f"/api/model-instances/{running['id']}/logs"
    with engines.admin.stream("GET", url, params={"tail": 0, "follow": "true"}, timeout=30) as followed:
        assert followed.status_code == 200
        # Everything written once the headers are here is in the stream.
        answer = chat(running, "tiny-logs")
        assert answer.status_code == 200, answer.text
        prompt_tokens = answer.json()["usage"]["prompt_tokens"]
        seen = read_until(followed.iter_lines(), "print_timing")
    # llama-server's account of that very request: a new prompt of its token count.
    assert any("new prompt" in line and f"task.n_tokens = {prompt_tokens}" in line for line in seen), seen


def test_the_workers_log_route_wants_the_servers_token(engines: Engines, running: dict[str, Any]) -> None:
    url = f"http://127.0.0.1:{engines.cluster.worker_port}/instances/{running['id']}/logs"
    anonymous = httpx.get(url, trust_env=False)
    assert anonymous.status_code == 401 and "Bearer" in anonymous.json()["detail"]
    wrong = httpx.get(url, headers={"Authorization": "Bearer not-the-token"}, trust_env=False)
    assert wrong.status_code == 401 and "invalid worker API token" in wrong.json()["detail"]
    # The admin's own credential is no worker token either.
    assert httpx.get(url, headers=dict(engines.admin.headers), trust_env=False).status_code == 401
    with sqlite3.connect(engines.cluster.root / "server" / "gpufleet.db") as db:
        [(stored,)] = db.execute("SELECT api_token_hash FROM workers WHERE name = 'main'").fetchall()
    # What the database holds opens nothing; with the cluster token it gives the server's bearer.
    from_db = httpx.get(url, headers={"Authorization": f"Bearer {stored}"}, trust_env=False)
    assert from_db.status_code == 401
    token = server_bearer((engines.cluster.root / "server" / "token").read_text().strip(), stored)
    right = httpx.get(url, params={"tail": 3}, headers={"Authorization": f"Bearer {token}"}, trust_env=False)
    assert right.status_code == 200 and 1 <= len(right.text.splitlines()) <= 3
    assert token not in engines.admin.get("/api/workers").text and stored not in engines.admin.get("/api/workers").text


def test_who_may_read_logs_is_who_may_read_the_instance(engines: Engines, running: dict[str, Any]) -> None:
    created = engines.admin.post(
        "/api/users", json={"username": "log-reader", "password": "log-reader-password", "role": "user"}
    )
    assert created.status_code == 201, created.text
    try:
        token = httpx.post(
            f"{engines.cluster.url}/api/auth/login",
            json={"username": "log-reader", "password": "log-reader-password"},
            trust_env=False,
        ).json()["access_token"]
        with httpx.Client(
            base_url=engines.cluster.url, headers={"Authorization": f"Bearer {token}"}, trust_env=False
        ) as user:
            assert user.get(f"/api/model-instances/{running['id']}").status_code == 403
            denied = user.get(f"/api/model-instances/{running['id']}/logs")
            assert denied.status_code == 403 and "a user credential may not" in denied.json()["detail"]
        # The worker running the instance may read it, and so its log.
        credential = json.loads((engines.cluster.root / "server" / "worker.json").read_text())["credential"]
        with httpx.Client(
            base_url=engines.cluster.url, headers={"Authorization": f"Bearer {credential}"}, trust_env=False
        ) as worker:
            assert worker.get(f"/api/model-instances/{running['id']}").status_code == 200
            assert worker.get(f"/api/model-instances/{running['id']}/logs", params={"tail": 1}).status_code == 200
    finally:
        engines.admin.delete(f"/api/users/{created.json()['id']}")


def test_a_pending_instance_has_no_logs_yet(engines: Engines) -> None:
    model = engines.deploy("tiny-logs-pending", engines.models / "llama-tiny.gguf", worker_selector={"no": "such"})
    try:
        [pending] = engines.wait(model["id"], lambda xs: len(xs) == 1, "the pending instance")
        assert pending["state"] == "pending"
        answer = engines.admin.get(f"/api/model-instances/{pending['id']}/logs")
        assert answer.status_code == 409
        assert answer.json()["detail"] == (
            f"instance {pending['name']} is pending: no logs yet, it has not been placed on a worker"
        )
    finally:
        engines.admin.delete(f"/api/models/{model['id']}")


def test_a_follow_ends_when_the_instance_goes(engines: Engines) -> None:
    model = engines.deploy("tiny-logs-gone", engines.models / "llama-tiny.gguf")
    [instance] = engines.wait_running(model["id"], 1)
    url = f"/api/model-instances/{instance['id']}/logs"
    with engines.admin.stream("GET", url, params={"tail": 1, "follow": "true"}, timeout=60) as followed:
        assert followed.status_code == 200
        assert engines.admin.delete(f"/api/models/{model['id']}").status_code == 204
        started = time.monotonic()
        body = followed.read()  # returns once the worker ends the stream
    assert time.monotonic() - started < 30 and body


def test_the_logs_command(engines: Engines, running: dict[str, Any]) -> None:
    key = engines.admin.post("/api/api-keys", json={"name": "logs-cli"}).json()["key"]
    common = ["--server", engines.cluster.url, "--api-key", key]
    for target in ("tiny-logs", running["name"], str(running["id"])):
        result = run_cli(["models", "logs", target, "--tail", "3", *common])
        assert result.returncode == 0, result.stderr
        assert 1 <= len(result.stdout.splitlines()) <= 3
    unknown = run_cli(["models", "logs", "no-such-model", *common])
    assert unknown.returncode == 1 and "no instance or deployment named 'no-such-model'" in unknown.stderr
    too_many = run_cli(["models", "logs", "tiny-logs", "--tail", "10001", *common])
    assert too_many.returncode == 2 and "10000" in too_many.stderr
