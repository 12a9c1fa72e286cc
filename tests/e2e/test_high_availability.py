"""Several ``gpufleet start --disable-worker`` servers on one PostgreSQL: one leader schedules, any
server serves the API, a SIGKILLed leader is replaced within 15 s, nothing is placed twice, and
watch streams on any server see every change (``server/leader.py``, ``server/notify.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from testkit.synthetic import preset, scaled, write_model
from tests.support.builders import register_worker
from tests.support.processes import GpufleetProcess, ports
from tests.support.wait import eventually
from tests.support.watch import WatchReader
from tests.support.worker_api import worker_api

PASSWORD = "admin-password-1"
TOKEN = "ha-cluster-token-0123456789"
DEPLOYMENTS = 50
TAKEOVER_LIMIT = 15.0


@pytest.fixture
def servers(tmp_path: Path, postgres_url: str) -> Iterator[list[tuple[GpufleetProcess, str]]]:
    """Three servers on one empty database, started at once (they migrate and create the admin one
    after another); (process, url) each."""
    started: list[tuple[GpufleetProcess, str]] = []
    env = {"GPUFLEET_TOKEN": TOKEN, "GPUFLEET_BOOTSTRAP_PASSWORD": PASSWORD}
    try:
        for i, port in enumerate(ports(3)):
            args = ["--disable-worker", "--host", "127.0.0.1", "--port", str(port), "--database-url", postgres_url]
            args += ["--data-dir", str(tmp_path / f"server{i}"), "--allowed-model-dirs", str(tmp_path / "models")]
            args += ["--log-level", "info"]
            process = GpufleetProcess(args, tmp_path / f"server{i}.log", env=env).start()
            started.append((process, f"http://127.0.0.1:{port}"))
        for process, url in started:
            process.wait_http(f"{url}/healthz", timeout=60)
        yield started
    finally:
        for process, _ in started:
            process.kill()


async def healthz(url: str) -> dict[str, Any] | None:
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=3) as client:
            body: dict[str, Any] = (await client.get(f"{url}/healthz")).json()
            return body
    except httpx.HTTPError:
        return None


async def leaders(urls: list[str]) -> list[str]:
    answers = await asyncio.gather(*(healthz(url) for url in urls))
    return [url for url, body in zip(urls, answers, strict=True) if body and body["leader"] is True]


@asynccontextmanager
async def heartbeating(urls: list[str], workers: list[tuple[int, str]]) -> AsyncIterator[None]:
    """The simulated workers beat every 2 s, each to the first server that answers (as real agents fail over)."""

    async def beat(worker_id: int, credential: str) -> None:
        async with httpx.AsyncClient(trust_env=False, timeout=3) as client:
            while True:
                for url in urls:
                    with contextlib.suppress(httpx.HTTPError):
                        response = await client.post(
                            f"{url}/api/workers/{worker_id}/heartbeat",
                            json={},
                            headers={"Authorization": f"Bearer {credential}"},
                        )
                        if response.status_code == 200:
                            break
                await asyncio.sleep(2)

    tasks = [asyncio.create_task(beat(*worker)) for worker in workers]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def create(urls: list[str], session: str, name: str, path: Path, start: int) -> None:
    """Create one deployment through ``urls[start]``, moving on to the next server if that one is down;
    a 409 after a lost answer means the first try committed."""
    headers = {"Authorization": f"Bearer {session}"}
    body = {"name": name, "source": "local_path", "local_path": str(path), "replicas": 1}
    async with httpx.AsyncClient(trust_env=False, timeout=30, headers=headers) as client:
        for attempt in range(len(urls) * 3):
            url = urls[(start + attempt) % len(urls)]
            try:
                response = await client.post(f"{url}/api/models", json=body)
            except httpx.HTTPError:
                continue
            if response.status_code == 201 or (attempt and response.status_code == 409):
                return
            raise AssertionError(f"{url}: {response.status_code} {response.text}")
    raise AssertionError(f"no server created {name}")


async def test_the_leader_is_replaced_and_nothing_is_placed_twice(
    servers: list[tuple[GpufleetProcess, str]], tmp_path: Path
) -> None:
    urls = [url for _, url in servers]
    model_path = tmp_path / "models" / "small.gguf"
    model_path.parent.mkdir(exist_ok=True)
    write_model(model_path, scaled(preset("llama-3.1-8b"), n_layer=4), "f16", sparse=True)

    first = await eventually(lambda: _one_leader(urls), timeout=20, what="exactly one leader")
    leader_process = next(process for process, url in servers if url == first)
    survivors = [url for url in urls if url != first]
    survivor = survivors[0]

    async with httpx.AsyncClient(base_url=survivor, trust_env=False, timeout=30) as anonymous:
        login = await anonymous.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        assert login.status_code == 200, login.text
        session = login.json()["access_token"]
    admin = httpx.AsyncClient(
        base_url=survivor, trust_env=False, timeout=30, headers={"Authorization": f"Bearer {session}"}
    )
    metrics = {url: (await admin.get(f"{url}/metrics")).text for url in urls}
    assert "gpufleet_server_leader 1.0" in metrics[first]
    assert all("gpufleet_server_leader 0.0" in metrics[url] for url in survivors)

    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(admin.aclose)
        workers = []
        for name in ("gpu-a", "gpu-b"):
            port = await stack.enter_async_context(worker_api(name, "worker-api-token", {}, TOKEN))
            joined = await register_worker(admin, TOKEN, name, gpus=8, port=port)
            workers.append((int(joined["worker"]["id"]), str(joined["credential"])))
        await stack.enter_async_context(heartbeating([*survivors, first], workers))
        # Watch streams on a server that never leads: an admin's, and each worker's own.
        watched = await stack.enter_async_context(WatchReader(admin, "instances"))
        worker_streams = [
            await stack.enter_async_context(
                WatchReader(
                    httpx.AsyncClient(
                        base_url=survivor,
                        trust_env=False,
                        timeout=None,
                        headers={"Authorization": f"Bearer {credential}"},
                    ),
                    "instances",
                )
            )
            for _, credential in workers
        ]
        for reader in (watched, *worker_streams):
            await reader.wait_for(lambda e: e.get("type") == "SYNCED", timeout=10)

        # 50 deployments created through all three servers at once; the leader dies among them.
        creations = [
            asyncio.create_task(create(urls, session, f"m{i:02d}", model_path, i % 3)) for i in range(DEPLOYMENTS)
        ]
        await eventually(lambda: _placed_count(admin, 5), timeout=60, what="the first placements")
        leader_process.kill()  # SIGKILL
        killed_at = time.monotonic()
        successor = await eventually(
            lambda: _one_leader(survivors), timeout=TAKEOVER_LIMIT + 5, interval=0.1, what="a new leader"
        )
        takeover = time.monotonic() - killed_at
        print(f"\ntakeover after SIGKILL of the leader: {takeover:.2f}s (new leader {successor})")
        assert takeover <= TAKEOVER_LIMIT
        await asyncio.gather(*creations)

        # Every deployment placed, once: one instance each, and no GPU promised beyond its memory.
        instances = await eventually(lambda: _all_placed(admin), timeout=90, what="every deployment placed")
        assert sorted(i["model_name"] for i in instances) == [f"m{i:02d}" for i in range(DEPLOYMENTS)]
        assert len({i["id"] for i in instances}) == DEPLOYMENTS
        for url in survivors:
            _assert_no_device_overcommitted((await admin.get(f"{url}/metrics")).text)

        # A placement by the new leader reaches the watch streams on the survivor that did not lead.
        await create([survivor], session, "after-takeover", model_path, 0)
        seen = await watched.wait_for(_placed("after-takeover"), timeout=30)
        assert seen["object"]["worker_id"] in {worker_id for worker_id, _ in workers}
        index = [worker_id for worker_id, _ in workers].index(seen["object"]["worker_id"])
        await worker_streams[index].wait_for(_placed("after-takeover"), timeout=10)
        for reader in worker_streams:
            await reader.client.aclose()


def _placed(model_name: str) -> Any:
    def match(event: dict[str, Any]) -> bool:
        row = event.get("object") or {}
        return bool(row.get("model_name") == model_name and row.get("worker_id") and row.get("state") != "pending")

    return match


async def _one_leader(urls: list[str]) -> str | None:
    found = await leaders(urls)
    return found[0] if len(found) == 1 else None


async def _placed_count(admin: httpx.AsyncClient, at_least: int) -> bool:
    rows = (await admin.get("/api/model-instances")).json()
    return sum(1 for row in rows if row["worker_id"] is not None) >= at_least


async def _all_placed(admin: httpx.AsyncClient) -> list[dict[str, Any]] | None:
    models = (await admin.get("/api/models")).json()
    rows: list[dict[str, Any]] = (await admin.get("/api/model-instances")).json()
    if len(models) < DEPLOYMENTS or len(rows) < DEPLOYMENTS:
        return None
    assert len(rows) == len(models), f"{len(rows)} instances for {len(models)} deployments of 1 replica"
    return rows if all(row["worker_id"] is not None and row["state"] != "pending" for row in rows) else None


def _assert_no_device_overcommitted(metrics: str) -> None:
    memory: dict[tuple[str, str], dict[str, float]] = {}
    for line in metrics.splitlines():
        if line.startswith("gpufleet_device_memory_bytes{"):
            labels, value = line[len("gpufleet_device_memory_bytes{") :].rsplit("} ", 1)
            fields = dict(part.split("=", 1) for part in labels.split(","))
            key = (fields["worker"].strip('"'), fields["device"].strip('"'))
            memory.setdefault(key, {})[fields["kind"].strip('"')] = float(value)
    assert memory, "no device memory in /metrics"
    for device, kinds in memory.items():
        assert kinds["claimed"] <= kinds["total"], f"{device} promised beyond its memory: {kinds}"
