"""Instance logs through the worker: the server relays ``GET /instances/{id}/logs`` of the
instance's main worker, presenting the token that worker registered.

The server is the real app; the worker side is the worker's real HTTP app served in-process,
with the log files the test writes (the end-to-end tests use real engines and their logs).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpufleet.common.net import free_port
from gpufleet.common.worker_api_token import token_hash
from gpufleet.db.tables import Worker
from testkit.synthetic import preset, write_model
from tests.support.builders import worker_registration
from tests.support.server import RunningServer, running_server
from tests.support.wait import eventually
from tests.support.worker_api import worker_api


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("gguf") / "tiny.gguf", preset("llama-tiny"), sparse=True)


async def register(server: RunningServer, name: str, port: int, token: str | None, **extra: Any) -> dict[str, Any]:
    body = worker_registration(name, gpus=1, port=port, labels={"w": name})
    if token is not None:
        body["api_token"] = token
    if "credential" in extra:  # a restarted worker: the cluster token, and its stored credential (as the agent sends)
        body["credential"] = extra.pop("credential")
    async with server.client(server.token) as client:
        response = await client.post("/api/workers/register", json=body)
    assert response.status_code == 200, response.text
    registered: dict[str, Any] = response.json()
    return registered


async def placed_on(admin: httpx.AsyncClient, model_file: Path, worker: str) -> dict[str, Any]:
    """Deploy a model pinned to ``worker``; its instance once scheduled there."""
    body = {
        "name": f"m-{worker}",
        "source": "local_path",
        "local_path": str(model_file),
        "worker_selector": {"w": worker},
    }
    created = await admin.post("/api/models", json=body)
    assert created.status_code == 201, created.text

    async def scheduled() -> dict[str, Any] | None:
        rows = (await admin.get("/api/model-instances", params={"model_id": created.json()["id"]})).json()
        return next((r for r in rows if r["state"] == "scheduled"), None)

    return await eventually(scheduled, timeout=10, what=f"an instance scheduled on {worker}")


async def read_until(chunks: AsyncIterator[bytes], needle: bytes, seen: bytes = b"") -> bytes:
    """Bytes from ``chunks`` until ``needle`` has arrived (5 s at most)."""
    async with asyncio.timeout(5):
        while needle not in seen:
            seen += await anext(chunks)
    return seen


async def test_the_worker_api_token_is_stored_and_never_shown(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server, await server.admin() as admin:
        first, second = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        registered = await register(server, "w1", server.settings.port, first)
        worker_id = registered["worker"]["id"]
        # A restarted worker re-attaches with its credential and a new token, which replaces the old one.
        # Only its hash is kept: no column of the database holds either token in clear.
        again = await register(server, "w1", server.settings.port, second, credential=registered["credential"])
        async with server.runtime.db.read() as session:
            row = await session.get(Worker, worker_id)
            assert row is not None and row.api_token_hash == token_hash(second)
            stored = str([getattr(row, column.key) for column in Worker.__table__.columns])
            assert first not in stored and second not in stored
        shown = [
            str(registered),
            str(again),
            (await admin.get("/api/workers")).text,
            (await admin.get(f"/api/workers/{worker_id}")).text,
        ]
        assert not any(first in text or second in text for text in shown)
        short = worker_registration("w2") | {"api_token": "short"}
        async with server.client(server.token) as client:
            refused = await client.post("/api/workers/register", json=short)
        assert refused.status_code == 422 and "api_token" in refused.text


async def test_logs_are_relayed_from_the_worker(
    tmp_path: Path, model_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gpufleet.worker.log_route")
    token = secrets.token_urlsafe(32)
    logs: dict[int, Path] = {}
    log = tmp_path / "engine.log"
    log.write_bytes(b"".join(f"line {i}\n".encode() for i in range(1, 6)))
    async with (
        running_server(tmp_path / "server") as server,
        await server.admin() as admin,
        worker_api("logw", token, logs, server.token) as port,
    ):
        await register(server, "logw", port, token)
        instance = await placed_on(admin, model_file, "logw")
        url = f"/api/model-instances/{instance['id']}/logs"

        missing = await admin.get(url)  # the worker does not run it (yet): its own words, passed on
        assert missing.status_code == 404
        assert f"worker logw runs no engine for instance {instance['id']}" in missing.json()["detail"]
        logs[instance["id"]] = tmp_path / "not-yet.log"
        not_started = await admin.get(url)
        assert not_started.status_code == 404 and "has no log on worker logw yet" in not_started.json()["detail"]
        logs[instance["id"]] = log

        tail = await admin.get(url, params={"tail": 2})
        assert tail.status_code == 200 and tail.headers["content-type"].startswith("text/plain")
        assert tail.text == "line 4\nline 5\n"
        assert (await admin.get(url)).text.count("\n") == 5  # default: the last 100 lines
        for bad in (-1, 10_001, "x"):
            invalid = await admin.get(url, params={"tail": bad})
            assert invalid.status_code == 422 and "tail" in invalid.json()["detail"]

        async with admin.stream("GET", url, params={"tail": 1, "follow": "true"}, timeout=10) as followed:
            assert followed.status_code == 200
            chunks = followed.aiter_bytes()
            assert await read_until(chunks, b"line 5\n") == b"line 5\n"
            with log.open("ab") as handle:
                handle.write(b"appended\n")
            assert await read_until(chunks, b"appended\n") == b"appended\n"
            log.rename(tmp_path / "engine.log.1")  # rotated: the new file is followed from its start
            log.write_bytes(b"rotated\n")
            assert await read_until(chunks, b"rotated\n") == b"rotated\n"
            with log.open("ab") as handle:
                handle.write(b"last words\n")
            del logs[instance["id"]]  # the instance is no longer this worker's: the stream ends
            async with asyncio.timeout(5):
                rest = b"".join([chunk async for chunk in chunks])
        assert rest == b"last words\n"
        assert f"stopped following the log of instance {instance['id']}: the instance no longer runs here" in (
            caplog.text
        )

        # A client that goes away ends the worker's follow too (the server closes its upstream).
        logs[instance["id"]] = log
        async with admin.stream("GET", url, params={"tail": 1, "follow": "true"}, timeout=10) as followed:
            await read_until(followed.aiter_bytes(), b"last words\n")
        gone = f"stopped following the log of instance {instance['id']}: the client went away"

        async def ended() -> bool:
            return gone in caplog.text

        await eventually(ended, timeout=5, what="the worker's follow to end")


async def test_worker_troubles_are_clear_errors(tmp_path: Path, model_file: Path) -> None:
    token = secrets.token_urlsafe(32)
    async with (
        running_server(tmp_path) as server,
        await server.admin() as admin,
        worker_api("liar", secrets.token_urlsafe(32), {}, server.token) as liar_port,
    ):
        await register(server, "old", server.settings.port, None)  # an older worker: no token
        old = await placed_on(admin, model_file, "old")
        answer = await admin.get(f"/api/model-instances/{old['id']}/logs")
        assert answer.status_code == 502 and "worker old did not register an API token" in answer.json()["detail"]

        await register(server, "liar", liar_port, token)  # the worker expects another token
        liar = await placed_on(admin, model_file, "liar")
        answer = await admin.get(f"/api/model-instances/{liar['id']}/logs")
        assert answer.status_code == 502
        assert f"worker liar at 127.0.0.1:{liar_port} refused the server's token" in answer.json()["detail"]

        gone = await register(server, "gone", server.settings.port, token)
        instance = await placed_on(admin, model_file, "gone")
        dead_port = free_port()  # the worker comes back on a port where nothing listens
        await register(server, "gone", dead_port, token, credential=gone["credential"])
        answer = await admin.get(f"/api/model-instances/{instance['id']}/logs")
        assert answer.status_code == 502
        assert f"cannot reach worker gone at 127.0.0.1:{dead_port}: ConnectError" in answer.json()["detail"]

        pending_model = {
            "name": "nowhere",
            "source": "local_path",
            "local_path": str(model_file),
            "worker_selector": {"w": "nobody"},
        }
        model = (await admin.post("/api/models", json=pending_model)).json()

        async def listed() -> list[dict[str, Any]] | None:
            rows: list[dict[str, Any]] = (
                await admin.get("/api/model-instances", params={"model_id": model["id"]})
            ).json()
            return rows or None

        [pending] = await eventually(listed, what="the pending instance")
        answer = await admin.get(f"/api/model-instances/{pending['id']}/logs")
        assert answer.status_code == 409
        assert answer.json()["detail"] == (
            f"instance {pending['name']} is pending: no logs yet, it has not been placed on a worker"
        )
        assert (await admin.get("/api/model-instances/999999/logs")).status_code == 404
