"""Worker liveness, judged on the server's clock.

Two loops:
- the sweep, every ``interval / 10``: one set-based UPDATE marks workers with no
  heartbeat for 3 intervals ``not_ready`` (``services.workers.mark_stale``);
- the probe controller: GET http://ip:port/healthz of each heartbeating worker,
  at registration (enqueued by the route) and every 3 intervals, the workers spread
  evenly over those 3 intervals and at most ``concurrency`` probes at once; a failed
  probe makes the worker ``unreachable`` (it heartbeats, but we cannot reach it). A
  probe that confirms what is stored writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable, Iterable

import httpx
from sqlalchemy import and_, or_, select

from gpufleet.db.session import Database
from gpufleet.db.tables import Worker
from gpufleet.schemas.states import WorkerState
from gpufleet.server.controllers.base import Controller
from gpufleet.server.heartbeats import HeartbeatLedger
from gpufleet.server.services import workers as worker_service
from gpufleet.server.services.workers import HEARTBEATING, STALE_AFTER_HEARTBEATS

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 3.0


class WorkerProbeController(Controller):
    name = "worker-probe"
    concurrency = 64  # a hung worker port must not delay the probes of the others
    spread_resync = True  # 2,000 workers every 30 s: about 67 probes a second, not 2,000 at once

    def __init__(self, db: Database, heartbeat_interval: float) -> None:
        super().__init__()
        self.db = db
        self.heartbeat_interval = heartbeat_interval
        self.resync_interval = 3 * heartbeat_interval
        self._client = httpx.AsyncClient(timeout=PROBE_TIMEOUT, trust_env=False)

    async def all_keys(self) -> Iterable[Hashable]:
        async with self.db.read() as session:
            # Heartbeating workers, and new ones awaiting their first probe; not the ones gone quiet.
            query = select(Worker.id).where(
                or_(
                    Worker.state.in_([s.value for s in HEARTBEATING]),
                    and_(Worker.state == WorkerState.NOT_READY.value, Worker.reachable.is_(None)),
                )
            )
            return list((await session.execute(query)).scalars().all())

    async def reconcile(self, key: Hashable) -> None:
        assert isinstance(key, int)
        async with self.db.read() as session:
            query = select(Worker.ip, Worker.port, Worker.reachable, Worker.state).where(Worker.id == key)
            row = (await session.execute(query)).first()
        if row is None:
            return
        ip, port, reachable, state = row
        host = f"[{ip}]" if ":" in ip else ip
        try:
            response = await self._client.get(f"http://{host}:{port}/healthz")
            ok, detail = response.status_code == 200, f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if ok and reachable is True and state in (WorkerState.READY, WorkerState.MAINTENANCE):
            return  # confirmed: nothing to write
        await worker_service.record_probe(self.db, key, ok, detail)

    async def stop(self) -> None:
        await super().stop()
        await self._client.aclose()


class StaleWorkerSweep:
    """Marks silent workers ``not_ready``, judging only what is in the database (any replica can).

    It writes the heartbeats noted in memory first, so a heartbeat this server answered is never
    judged missing; and it judges nobody during a grace of 3 intervals after it starts, so the
    workers of a server that restarted (whose last noted heartbeats may be lost, at most one flush
    interval of them, and who kept beating against a server that was down) are not marked falsely.
    """

    def __init__(self, db: Database, heartbeat_interval: float, heartbeats: HeartbeatLedger | None = None) -> None:
        self.db = db
        self.heartbeat_interval = heartbeat_interval
        self.heartbeats = heartbeats
        self.grace = STALE_AFTER_HEARTBEATS * heartbeat_interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="stale-worker-sweep")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        period = max(0.1, self.heartbeat_interval / 10)
        judging_from = asyncio.get_running_loop().time() + self.grace
        while True:
            try:
                if self.heartbeats is not None:
                    await self.heartbeats.flush()
                marked: list[int] = []
                if asyncio.get_running_loop().time() >= judging_from:
                    marked = await worker_service.mark_stale(self.db, self.heartbeat_interval, period)
                if marked:
                    logger.warning("workers %s stopped sending heartbeats: now not_ready", marked)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("stale-worker sweep failed; trying again in %.1fs", period)
            await asyncio.sleep(period)
