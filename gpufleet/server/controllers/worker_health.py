"""Worker liveness, judged on the server's clock.

Two loops:
- the sweep, every ``interval / 5``: one set-based UPDATE marks workers with no
  heartbeat for 3 intervals ``not_ready`` (``services.workers.mark_stale``);
- the probe controller: GET http://ip:port/healthz of each heartbeating worker,
  at registration (enqueued by the route) and every 3 intervals; a failed probe
  makes the worker ``unreachable`` (it heartbeats, but we cannot reach it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable, Iterable

import httpx
from sqlalchemy import select

from gpufleet.db.session import Database
from gpufleet.db.tables import Worker
from gpufleet.schemas.states import WorkerState
from gpufleet.server.controllers.base import Controller
from gpufleet.server.services import workers as worker_service

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 3.0
PROBE_CONCURRENCY = 64


class WorkerProbeController(Controller):
    name = "worker-probe"

    def __init__(self, db: Database, heartbeat_interval: float) -> None:
        super().__init__()
        self.db = db
        self.heartbeat_interval = heartbeat_interval
        self.resync_interval = 3 * heartbeat_interval
        self._client = httpx.AsyncClient(timeout=PROBE_TIMEOUT, trust_env=False)
        self._limit = asyncio.Semaphore(PROBE_CONCURRENCY)

    async def all_keys(self) -> Iterable[Hashable]:
        async with self.db.read() as session:
            query = select(Worker.id).where(
                Worker.state.in_([WorkerState.READY, WorkerState.UNREACHABLE, WorkerState.NOT_READY])
            )
            return list((await session.execute(query)).scalars().all())

    async def reconcile(self, key: Hashable) -> None:
        assert isinstance(key, int)
        async with self.db.read() as session:
            row = await session.get(Worker, key)
            address = (row.ip, row.port, row.state) if row is not None else None
        if address is None or address[2] == WorkerState.MAINTENANCE:
            return
        ip, port, _ = address
        host = f"[{ip}]" if ":" in ip else ip
        async with self._limit:
            try:
                response = await self._client.get(f"http://{host}:{port}/healthz")
                ok, detail = response.status_code == 200, f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                ok, detail = False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        await worker_service.record_probe(self.db, key, ok, detail)

    async def stop(self) -> None:
        await super().stop()
        await self._client.aclose()


class StaleWorkerSweep:
    def __init__(self, db: Database, heartbeat_interval: float) -> None:
        self.db = db
        self.heartbeat_interval = heartbeat_interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="stale-worker-sweep")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        period = max(0.2, self.heartbeat_interval / 5)
        while True:
            try:
                marked = await worker_service.mark_stale(self.db, self.heartbeat_interval)
                if marked:
                    logger.warning("workers %s stopped sending heartbeats: now not_ready", marked)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("stale-worker sweep failed; trying again in %.1fs", period)
            await asyncio.sleep(period)
