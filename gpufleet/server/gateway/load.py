"""This server's ``/v1`` load per deployment, and the load of every server, for scaling decisions.

In memory, per deployment: requests received and not finished (``active``: waiting in its line or
in flight), when the last one began or ended, and when its load last needed every instance it has
(``busy``: more requests than the instances but one could take, ``(running - 1) × slots``; with one
instance or none, any request).

Every ``FLUSH`` seconds what changed is written to the database, and at once when a deployment
gets its first request here (so the leader sees it before it could evict or unload it):
- ``models.last_request_at`` and ``models.busy_at`` (only ever moved forward, so servers do not
  undo each other): scaling down and unloading wait for ``busy_at`` to be ``idle_timeout`` old;
- one ``gateway_load`` row per deployment with requests here (in flight, queued), refreshed while
  non-zero and deleted when it falls to zero: what the other servers' requests look like to the
  leader (eviction never stops a model with requests in flight anywhere) and to the API
  (``queued_requests``). A row older than ``FRESH`` is from a server that stopped: ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Update, delete, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute

from gpufleet.common.clock import utcnow
from gpufleet.db.session import Database
from gpufleet.db.tables import GatewayLoad, Model
from gpufleet.server.gateway.routing import Route
from gpufleet.server.gateway.waiting import WaitingLines
from gpufleet.server.services.demand import Load

logger = logging.getLogger(__name__)

FLUSH = 1.0  # seconds between writes while requests come
FRESH = timedelta(seconds=6)  # another server's row older than this is from a server that is gone
FORGOTTEN = timedelta(minutes=10)  # rows of servers gone this long are deleted


class LoadTracker:
    def __init__(
        self, db: Database, server_id: str, lines: WaitingLines, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.db = db
        self.server_id = server_id
        self.lines = lines
        self._clock = clock
        self.active: dict[int, int] = {}
        self._routes: dict[int, Route] = {}  # the newest route of each deployment with requests here
        self._last_request: dict[int, datetime] = {}  # not yet written
        self._busy: dict[int, datetime] = {}  # not yet written
        self._rows: set[int] = set()  # deployments with a gateway_load row of ours
        self._task: asyncio.Task[None] | None = None
        self._first = asyncio.Event()  # a deployment without a row of ours has a request

    def begin(self, route: Route) -> None:
        self.active[route.model_id] = self.active.get(route.model_id, 0) + 1
        if route.model_id not in self._rows:
            self._first.set()  # written at once: the leader must not stop what now has a request
        self._routes[route.model_id] = route
        self._last_request[route.model_id] = self._clock()
        self._note_busy(route.model_id)

    def end(self, route: Route) -> None:
        left = self.active.get(route.model_id, 1) - 1
        if left > 0:
            self.active[route.model_id] = left
        else:
            self.active.pop(route.model_id, None)
        self._last_request[route.model_id] = self._clock()

    def local(self, model_id: int) -> Load:
        queued = self.lines.queued(model_id)
        return Load(max(0, self.active.get(model_id, 0) - queued), queued)

    def _note_busy(self, model_id: int) -> None:
        route = self._routes.get(model_id)
        if route is None:
            return
        spare = max(0, len(route.endpoints) - 1) * route.admission.max_concurrent
        if self.active.get(model_id, 0) > spare:
            self._busy[model_id] = self._clock()

    async def everywhere(self) -> dict[int, Load]:
        """Every deployment's load on all servers: ours as it is now, the others' as last written."""
        since = self._clock() - FRESH
        async with self.db.read() as session:
            rows = (
                await session.execute(
                    select(GatewayLoad.model_id, GatewayLoad.in_flight, GatewayLoad.queued).where(
                        GatewayLoad.server_id != self.server_id, GatewayLoad.updated_at > since
                    )
                )
            ).all()
        totals = {model_id: self.local(model_id) for model_id in self.active}
        for model_id, in_flight, queued in rows:
            mine = totals.get(model_id, Load())
            totals[model_id] = Load(mine.in_flight + in_flight, mine.queued + queued)
        return totals

    async def queued_everywhere(self) -> dict[int, int]:
        return {model_id: load.queued for model_id, load in (await self.everywhere()).items() if load.queued}

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="gateway-load-flush")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.active.clear()
        try:
            await self.flush()  # last times written, our rows deleted
        except Exception:  # the database may be the reason we stop
            logger.exception("gateway load: the last write failed")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._first.wait(), FLUSH)
            self._first.clear()
            try:
                await self.flush()
            except Exception:  # kept for the next round; the log says why
                logger.exception("gateway load: write failed; kept for the next try")

    async def flush(self) -> None:
        for model_id in self.active:
            self._note_busy(model_id)
        for model_id in list(self._routes):
            if model_id not in self.active:
                del self._routes[model_id]
        # copies: requests keep coming while this awaits the database
        last, busy, active = dict(self._last_request), dict(self._busy), set(self.active)
        gone = self._rows - active
        if not (last or busy or active or gone):
            return
        now = self._clock()
        async with self.db.transaction() as session:
            # in id order: two servers writing the same rows lock them in the same order
            for model_id, when in sorted(last.items()):
                await session.execute(_forward(Model.last_request_at, model_id, when))
            for model_id, when in sorted(busy.items()):
                await session.execute(_forward(Model.busy_at, model_id, when))
            await session.execute(delete(GatewayLoad).where(GatewayLoad.updated_at < now - FORGOTTEN))
            mine = GatewayLoad.server_id == self.server_id
            await session.execute(delete(GatewayLoad).where(mine, GatewayLoad.model_id.in_(gone | active)))
            existing = set((await session.execute(select(Model.id).where(Model.id.in_(active)))).scalars())
            for model_id in sorted(active & existing):  # a deployment deleted meanwhile has no row to refer to
                load = self.local(model_id)
                session.add(
                    GatewayLoad(
                        server_id=self.server_id,
                        model_id=model_id,
                        updated_at=now,
                        in_flight=load.in_flight,
                        queued=load.queued,
                    )
                )
        self._rows = active & existing
        for model_id, when in last.items():
            if self._last_request.get(model_id) == when:
                del self._last_request[model_id]
        for model_id, when in busy.items():
            if self._busy.get(model_id) == when:
                del self._busy[model_id]


def _forward(column: InstrumentedAttribute[datetime | None], model_id: int, when: datetime) -> Update:
    """UPDATE models SET <column> = when, if that moves it forward (``updated_at`` untouched)."""
    return (
        update(Model)
        .where(Model.id == model_id, or_(column.is_(None), column < when))
        .values({column: when, Model.updated_at: Model.updated_at})
        .execution_options(synchronize_session=False)
    )
