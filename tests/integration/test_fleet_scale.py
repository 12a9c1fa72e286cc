"""The control plane with a few hundred workers: plain heartbeats answered from memory and written in
batches, nobody flapping, liveness judged from the database with a grace after a restart, and list
endpoints that page and filter."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from sqlalchemy import select, update

from gpufleet.common.clock import as_utc, utcnow
from gpufleet.db.tables import Worker
from gpufleet.schemas.states import WorkerState
from gpufleet.schemas.workers import HeartbeatAck
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
            return await _register(server, admin, i)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def _register(server: RunningServer, admin: httpx.AsyncClient, i: int) -> tuple[int, str]:
    labels = {"zone": "eu" if i % 2 else "us", "tier": str(i % 5)}
    body = await register_worker(admin, server.token, f"w{i:03d}", gpus=2, port=server.settings.port, labels=labels)
    return int(body["worker"]["id"]), str(body["credential"])


class Fleet:
    """``count`` simulated workers that, like real ones, heartbeat ``{}`` once an interval from their
    registration on (a worker that registered and then waited for the others would rightly be judged
    silent). Their beats are spread over the interval: position ``i`` beats at ``i / count`` of it.

    aiohttp, one pool: the load shares the server's event loop, so the client must cost little.
    """

    def __init__(self, server: RunningServer, admin: httpx.AsyncClient, count: int) -> None:
        self.server, self.admin, self.count = server, admin, count
        self.codes: dict[int, list[tuple[float, int]]] = {}  # worker id -> (loop time, HTTP status)
        self._gate = asyncio.Semaphore(16)  # registrations at once

    async def run(self, until: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        origin = loop.time()
        async with aiohttp.ClientSession() as session:

            async def worker(i: int) -> None:
                async with self._gate:
                    worker_id, credential = await _register(self.server, self.admin, i)
                codes = self.codes.setdefault(worker_id, [])
                headers = {"Authorization": f"Bearer {credential}"}
                url = f"{self.server.url}/api/workers/{worker_id}/heartbeat"
                next_at = origin + INTERVAL * i / self.count
                while not until.is_set():
                    next_at = max(next_at + INTERVAL, loop.time())  # never a burst to catch up
                    async with session.post(url, json={}, headers=headers) as response:
                        codes.append((loop.time(), response.status))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(until.wait(), max(0.0, next_at - loop.time()))

            await asyncio.gather(*(worker(i) for i in range(self.count)))


async def test_hundreds_of_workers_stay_ready_and_lists_page(tmp_path: Path) -> None:
    async with running_server(tmp_path, heartbeat_interval=INTERVAL) as server, await server.admin() as admin:
        fleet, stop = Fleet(server, admin, WORKERS), asyncio.Event()
        beating = asyncio.create_task(fleet.run(stop))
        flapped: list[dict[str, Any]] = []

        def watch(event: Any) -> None:  # every committed change of a worker's state
            if event.kind == "workers" and event.object and event.object["state"] == "not_ready":
                flapped.append(event.object)

        async def all_ready() -> bool:
            page = (await admin.get("/api/workers", params={"state": "ready", "limit": 1})).json()
            return bool(page["total"] == WORKERS)

        try:
            await eventually(all_ready, timeout=60, what="every worker ready")
            server.runtime.db.add_listener(watch)
            loop = asyncio.get_running_loop()
            measured_from = loop.time()
            await asyncio.sleep(6 * INTERVAL)  # the measured window: 6 intervals of plain heartbeats
        finally:
            stop.set()
            await beating
        window = [status for codes in fleet.codes.values() for at, status in codes if at >= measured_from]
        assert set(window) == {200}
        # every worker kept beating through the window (at least 5 of its 6 beats fell inside it)
        assert min(sum(at >= measured_from for at, _ in codes) for codes in fleet.codes.values()) >= 5
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
        (first, first_credential), (second, _) = await join(server, admin, 2)
        async with server.client(first_credential) as client:

            async def fast() -> bool:  # the worker is known to be live: a plain heartbeat skips the database
                answer = (await client.post(f"/api/workers/{first}/heartbeat", json={})).json()
                noted = server.runtime.heartbeats._arrivals.get(first) is not None
                return noted and answer == {"id": first, "state": "ready", "state_message": None}

            await eventually(fast, timeout=5, what="a heartbeat answered from memory, tiny")

        async def stored(worker_id: int) -> datetime:
            async with server.runtime.db.read() as session:
                query = select(Worker.heartbeat_at).where(Worker.id == worker_id)
                value = (await session.execute(query)).scalar_one()
                assert value is not None
                return as_utc(value)

        # The batching itself, on a ledger of our own (the server's flushes on its own clock): fed the
        # workers' states like the server's, noting arrivals only in memory until it flushes.
        ledger = HeartbeatLedger(server.runtime.db, flush_interval=1.0)
        for worker_id in (first, second):
            ledger.known(HeartbeatAck(id=worker_id, state=WorkerState.READY))
        assert ledger.beat(first) is not None
        noted_first = ledger._arrivals[first]
        await asyncio.sleep(0.6)  # more than a tick (0.25 s): the two arrivals fall in different ticks
        assert ledger.beat(second) is not None
        noted_second = ledger._arrivals[second]
        assert await stored(first) < noted_first  # not written yet: nothing but a flush writes
        assert await ledger.flush() == 2  # one transaction for the batch
        for worker_id, noted in ((first, noted_first), (second, noted_second)):
            written = await stored(worker_id)
            # its own arrival rounded down to the tick, never the batch's earliest for everyone
            assert noted - timedelta(seconds=0.25) < written <= noted
        assert await stored(second) > noted_first
        assert await ledger.flush() == 0  # nothing new noted, nothing written


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
