"""Worker liveness, judged on the server's clock.

Two loops:
- the sweep, every ``interval / 10``: one set-based UPDATE marks workers with no
  heartbeat for 3 intervals ``not_ready`` (``services.workers.mark_stale``);
- the probe controller: GET http://ip:port/healthz of each heartbeating worker,
  at registration (enqueued by the route) and every 3 intervals, the workers spread
  evenly over those 3 intervals and at most ``concurrency`` probes at once; a failed
  probe makes the worker ``unreachable`` (it heartbeats, but we cannot reach it). A
  probe that confirms what is stored writes nothing.

Probing costs little per worker, because thousands of workers make dozens of probes a second:
a resync's probes use the rows its listing read (no query per probe), and the GETs go through
aiohttp (a quarter of httpx's CPU per request, as in the gateway). A probe asked for by a change
(``probe_now``: a registration, a worker gone quiet) reads the row afresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable, Iterable

import aiohttp
from sqlalchemy import and_, or_, select

from gpufleet.db.session import Database, FencedOut
from gpufleet.db.tables import Worker
from gpufleet.schemas.states import WorkerState
from gpufleet.server.controllers.base import Controller
from gpufleet.server.heartbeats import HeartbeatLedger
from gpufleet.server.services import workers as worker_service
from gpufleet.server.services.workers import HEARTBEATING, STALE_AFTER_HEARTBEATS

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 3.0
# Probes that read or write the database at once: the HTTP GETs run 64 at a time, but their queries
# must leave the connection pool to the API (10,000 workers registering enqueue 10,000 probes).
PROBE_DB_CONCURRENCY = 4


ProbeTarget = tuple[str, int, bool | None, str]  # ip, port, reachable, state: what a probe needs of a row


class WorkerProbeController(Controller):
    name = "worker-probe"
    concurrency = 64  # a hung worker port must not delay the probes of the others
    spread_resync = True  # 2,000 workers every 30 s: about 67 probes a second, not 2,000 at once

    def __init__(self, db: Database, heartbeat_interval: float) -> None:
        super().__init__()
        self.db = db
        self.heartbeat_interval = heartbeat_interval
        self.resync_interval = 3 * heartbeat_interval
        self._listed: dict[int, ProbeTarget] = {}  # the last resync's rows, each used by one probe
        self._http: aiohttp.ClientSession | None = None
        self._db_gate = asyncio.Semaphore(PROBE_DB_CONCURRENCY)

    def probe_now(self, worker_id: int) -> None:
        """The worker's row changed (registered, gone quiet): probe it, reading the row afresh."""
        self._listed.pop(worker_id, None)
        self.enqueue(worker_id)

    async def all_keys(self) -> Iterable[Hashable]:
        async with self.db.read() as session:
            # Heartbeating workers, and new ones awaiting their first probe; not the ones gone quiet.
            query = select(Worker.id, Worker.ip, Worker.port, Worker.reachable, Worker.state).where(
                or_(
                    Worker.state.in_([s.value for s in HEARTBEATING]),
                    and_(Worker.state == WorkerState.NOT_READY.value, Worker.reachable.is_(None)),
                )
            )
            rows = (await session.execute(query)).all()
        self._listed = {worker_id: (ip, port, reachable, state) for worker_id, ip, port, reachable, state in rows}
        return list(self._listed)

    async def reconcile(self, key: Hashable) -> None:
        assert isinstance(key, int)
        target = self._listed.pop(key, None) or await self._read(key)
        if target is None:
            return
        ip, port, reachable, state = target
        ok, detail = await self._get(f"http://{f'[{ip}]' if ':' in ip else ip}:{port}/healthz")
        if ok and reachable is True and state in (WorkerState.READY, WorkerState.MAINTENANCE):
            return  # confirmed: nothing to write
        # record_probe reads the row in its transaction: a listed row that went stale decides nothing
        async with self._db_gate:
            await worker_service.record_probe(self.db, key, ok, detail)

    async def _read(self, worker_id: int) -> ProbeTarget | None:
        async with self._db_gate, self.db.read() as session:
            query = select(Worker.ip, Worker.port, Worker.reachable, Worker.state).where(Worker.id == worker_id)
            row = (await session.execute(query)).first()
        return None if row is None else (row[0], row[1], row[2], row[3])

    async def _get(self, url: str) -> tuple[bool, str]:
        if self._http is None:
            timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
            # no connection reuse: a probe is meant to find out whether a new connection gets through
            self._http = aiohttp.ClientSession(
                timeout=timeout, trust_env=False, connector=aiohttp.TCPConnector(force_close=True, limit=0)
            )
        try:
            async with self._http.get(url, allow_redirects=False) as response:
                return response.status == 200, f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    async def stop(self) -> None:
        await super().stop()
        if self._http is not None:
            await self._http.close()
            self._http = None  # started again when this server leads again


class StaleWorkerSweep:
    """Marks silent workers ``not_ready``, judging only what is in the database (any replica can).

    It writes the heartbeats noted in memory first, so a heartbeat this server answered is never
    judged missing; and it judges nobody during a grace of 3 intervals after it starts, so the
    workers of a server that restarted (whose last noted heartbeats may be lost, at most one flush
    interval of them, and who kept beating against a server that was down) are not marked falsely.
    """

    def __init__(self, db: Database, heartbeat_interval: float, heartbeats: HeartbeatLedger) -> None:
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
                marked: list[int] = []
                async with self.heartbeats.flushed():
                    if asyncio.get_running_loop().time() >= judging_from:
                        marked = await worker_service.mark_stale(self.db, self.heartbeat_interval, period)
                if marked:
                    logger.warning("workers %s stopped sending heartbeats: now not_ready", marked)
            except asyncio.CancelledError:
                raise
            except FencedOut as exc:  # no longer the leader: it is being stopped, no traceback each period
                logger.warning("stale-worker sweep not committed: %s", exc)
            except Exception:
                logger.exception("stale-worker sweep failed; trying again in %.1fs", period)
            await asyncio.sleep(period)
