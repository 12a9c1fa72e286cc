"""The control plane with a few hundred workers: plain heartbeats answered from memory and written in
batches, nobody flapping, liveness judged from the database with a grace after a restart, and list
endpoints that page and filter."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from sqlalchemy import select, update

from gpufleet.common.clock import as_utc, utcnow
from gpufleet.db.tables import Worker
from gpufleet.server.heartbeats import HeartbeatLedger
from tests.support.builders import register_worker
from tests.support.server import RunningServer, running_server
from tests.support.wait import eventually

WORKERS = 200
INTERVAL = 2.0  # seconds between heartbeats (10 in production): 100 heartbeats a second here


async def join(server: RunningServer, admin: httpx.AsyncClient, count: int) -> list[tuple[int, str]]:
    """``count`` workers registered with the cluster token; every one reachable (the server's own port)."""
    gate = asyncio.Semaphore(16)

    async def one(i: int) -> tuple[int, str]:
        async with gate:
            labels = {"zone": "eu" if i % 2 else "us", "tier": str(i % 5)}
            body = await register_worker(
                admin, server.token, f"w{i:03d}", gpus=2, port=server.settings.port, labels=labels
            )
            return int(body["worker"]["id"]), str(body["credential"])

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def beat_for(server: RunningServer, workers: list[tuple[int, str]], seconds: float) -> list[int]:
    """Every worker heartbeats ``{}`` once an interval, spread over it; returns the status codes.

    aiohttp, one pool: the load shares the server's event loop, so the client must cost little."""
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    codes: list[int] = []

    async def worker(session: aiohttp.ClientSession, position: int, worker_id: int, credential: str) -> None:
        headers = {"Authorization": f"Bearer {credential}"}
        next_at = loop.time() + INTERVAL * position / len(workers)
        while next_at < until:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at += INTERVAL
            async with session.post(f"{server.url}/api/workers/{worker_id}/heartbeat", json={}, headers=headers) as r:
                codes.append(r.status)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session, i, wid, cred) for i, (wid, cred) in enumerate(workers)))
    return codes


async def test_hundreds_of_workers_stay_ready_and_lists_page(tmp_path: Path) -> None:
    async with running_server(tmp_path, heartbeat_interval=INTERVAL) as server, await server.admin() as admin:
        workers = await join(server, admin, WORKERS)
        flapped: list[dict[str, Any]] = []

        def watch(event: Any) -> None:  # every committed change of a worker's state
            if event.kind == "workers" and event.object and event.object["state"] == "not_ready":
                flapped.append(event.object)

        codes_task = asyncio.create_task(beat_for(server, workers, 6 * INTERVAL))

        async def all_ready() -> bool:
            page = (await admin.get("/api/workers", params={"state": "ready", "limit": 1})).json()
            return page["total"] == WORKERS

        await eventually(all_ready, timeout=15, what="every worker ready")
        server.runtime.db.add_listener(watch)
        codes = await codes_task
        assert set(codes) == {200} and len(codes) == WORKERS * 6
        assert flapped == [], f"{len(flapped)} workers flapped to not_ready, e.g. {flapped[0]['state_message']}"
        page = (await admin.get("/api/workers", params={"state": "ready", "limit": 1})).json()
        assert page["total"] == WORKERS  # still all ready after 6 intervals of plain heartbeats

        # Paging: a stable order by name, a total over all pages.
        first = (await admin.get("/api/workers", params={"limit": 50})).json()
        last = (await admin.get("/api/workers", params={"limit": 50, "offset": 150})).json()
        assert first["total"] == last["total"] == WORKERS
        assert [w["name"] for w in first["items"]] == [f"w{i:03d}" for i in range(50)]
        assert [w["name"] for w in last["items"]] == [f"w{i:03d}" for i in range(150, 200)]
        # Filters: labels (repeatable), name search, state.
        eu_tier0 = await admin.get("/api/workers", params=[("label", "zone=eu"), ("label", "tier=0"), ("limit", 100)])
        names = [w["name"] for w in eu_tier0.json()["items"]]
        assert names == [f"w{i:03d}" for i in range(WORKERS) if i % 2 and i % 5 == 0]
        found = (await admin.get("/api/workers", params={"q": "W19", "limit": 100})).json()
        assert found["total"] == 10  # w190-w199 (case-insensitive; w019 does not contain "w19")
        assert (await admin.get("/api/workers", params={"state": "not_ready", "limit": 10})).json() == {
            "items": [],
            "total": 0,
        }
        assert len((await admin.get("/api/workers")).json()) == WORKERS  # no limit: the bare list, as before
        devices = (await admin.get("/api/devices", params={"q": "w007:cuda", "limit": 10})).json()
        assert [d["id"] for d in devices["items"]] == ["w007:cuda:0", "w007:cuda:1"] and devices["total"] == 2
        bad = await admin.get("/api/workers", params={"label": "zone"})
        assert bad.status_code == 422 and "key=value" in bad.json()["detail"]
        models = await admin.get("/api/models", params={"state": "running", "limit": 5})
        assert models.status_code == 422 and "cannot be filtered by state" in models.json()["detail"]


async def test_heartbeat_times_reach_the_database_in_batches(tmp_path: Path) -> None:
    async with running_server(tmp_path, heartbeat_interval=INTERVAL) as server, await server.admin() as admin:
        ((worker_id, credential),) = await join(server, admin, 1)
        ledger: HeartbeatLedger = server.runtime.heartbeats
        async with server.client(credential) as client:

            async def stored() -> Any:
                async with server.runtime.db.read() as session:
                    return (
                        await session.execute(select(Worker.heartbeat_at).where(Worker.id == worker_id))
                    ).scalar_one()

            async def fast() -> bool:  # the worker is known to be live: plain heartbeats skip the database
                await client.post(f"/api/workers/{worker_id}/heartbeat", json={})
                return ledger._arrivals.get(worker_id) is not None

            await eventually(fast, timeout=5, what="a heartbeat answered from memory")
            received = ledger._arrivals[worker_id]
            assert as_utc(await stored()) < received  # not written yet
            assert await ledger.flush() == 1
            assert as_utc(await stored()) == received  # one UPDATE wrote it: the server's receive time
            answer = (await client.post(f"/api/workers/{worker_id}/heartbeat", json={})).json()
            assert answer == {"id": worker_id, "state": "ready", "state_message": None}


async def test_liveness_after_a_restart_gets_a_grace(tmp_path: Path) -> None:
    async with running_server(tmp_path, heartbeat_interval=INTERVAL) as server, await server.admin() as admin:
        ((worker_id, _),) = await join(server, admin, 1)
        await eventually(lambda: _state(admin, worker_id, "ready"), timeout=5, what="the worker ready")
    # The server was down for a while: its stored heartbeat is 10 intervals old.
    async with running_server(tmp_path, heartbeat_interval=INTERVAL) as server, await server.admin() as admin:
        async with server.runtime.db.transaction() as session:
            await session.execute(
                update(Worker).where(Worker.id == worker_id).values(heartbeat_at=utcnow() - timedelta(seconds=10))
            )
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.sleep(INTERVAL)  # well within the grace (3 intervals): not judged silent yet
        # (it may be unreachable: the port it registered with was the first server's)
        assert not await _state(admin, worker_id, "not_ready")
        await eventually(lambda: _state(admin, worker_id, "not_ready"), timeout=10, what="judged after the grace")
        assert loop.time() - started >= 2 * INTERVAL  # not before the grace (from the server's start) ran out


async def _state(admin: httpx.AsyncClient, worker_id: int, state: str) -> bool:
    return bool((await admin.get(f"/api/workers/{worker_id}")).json()["state"] == state)
