"""Reschedule controller: a lost worker's instances are placed elsewhere after a grace period.

A worker that stops heartbeating becomes ``not_ready`` and its instances ``unreachable``
(``services.workers.mark_stale``). If it stays lost, capacity would stay lost with it; so
``reconcile(worker_id)`` gives it ``grace`` seconds and then sends its instances back to
``pending`` with a message that says why: the scheduler places them on live workers, and
the model returns to full replicas (``services.reschedule``).

When is a worker "lost for longer than the grace"? On the server's clock only, from what is in
the database: at ``max(last heartbeat received, this controller's start) + stale window + grace``,
the stale window being the 3 heartbeat intervals after which the worker was judged lost. Counting
from this controller's start means a server that restarted (or a new leader) gives every worker the
same grace again before anything moves, whatever ``heartbeat_at`` says: heartbeats sent while no
server ran were never recorded.

Level-triggered: a key is a worker id, enqueued when a worker is marked ``not_ready`` and by the
periodic resync; a reconcile that comes too early re-enqueues the key for the moment the grace ends,
and it reads the worker and its instances afresh. A worker that came back meanwhile (heartbeats
again) is left alone: its instances return to ``running`` as its agent reports them. One that
returns after its instances moved stops their engines itself: they are no longer in its watch
listing (``worker.supervisor``), so nothing runs twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable, Iterable
from datetime import datetime

from sqlalchemy import select

from gpufleet.common.clock import utcnow
from gpufleet.db.session import Database
from gpufleet.db.tables import Worker
from gpufleet.schemas.states import WorkerState
from gpufleet.server.controllers.base import Controller
from gpufleet.server.services import reschedule
from gpufleet.server.services.workers import STALE_AFTER_HEARTBEATS

logger = logging.getLogger(__name__)


class RescheduleController(Controller):
    name = "reschedule"

    def __init__(self, db: Database, heartbeat_interval: float, grace: float) -> None:
        super().__init__()
        self.db = db
        self.grace = grace
        self.stale_window = STALE_AFTER_HEARTBEATS * heartbeat_interval
        # A safety net only: a worker marked not_ready enqueues itself, and an early look re-enqueues.
        self.resync_interval = max(1.0, min(60.0, 3 * heartbeat_interval))
        self.started_at = utcnow()
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        # worker id -> the last heartbeat it had when its instances were moved: nothing is placed on a
        # not_ready worker, so until it heartbeats again there is nothing new to move (no scan per resync)
        self._settled: dict[int, datetime | None] = {}

    def start(self) -> None:
        self.started_at = utcnow()  # the grace after a server (or leader) start counts from here
        self._settled.clear()
        super().start()

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        await super().stop()

    def deadline(self, heartbeat_at: datetime | None) -> datetime:
        """When a worker last heard from at ``heartbeat_at`` (and silent since) has been lost for the grace."""
        return reschedule.due_at(heartbeat_at, self.started_at, self.stale_window, self.grace)

    async def all_keys(self) -> Iterable[Hashable]:
        async with self.db.read() as session:
            query = select(Worker.id).where(Worker.state == WorkerState.NOT_READY.value)
            return list((await session.execute(query)).scalars().all())

    async def reconcile(self, key: Hashable) -> None:
        assert isinstance(key, int)
        async with self.db.read() as session:
            worker = await session.get(Worker, key)
            if worker is None or worker.state != WorkerState.NOT_READY:
                self._settled.pop(key, None)
                return
            heartbeat_at = worker.heartbeat_at
            if key in self._settled and self._settled[key] == heartbeat_at:
                return
            wait = (self.deadline(heartbeat_at) - utcnow()).total_seconds()
        if wait > 0:
            self._later(key, wait)
            return
        moved = await reschedule.move_off(self.db, key, self.deadline)
        if moved is None:  # back (or heartbeating again) meanwhile; the resync looks again if need be
            return
        self._settled[key] = heartbeat_at
        if moved:
            logger.warning("worker %d is lost: instances %s were sent back to be placed elsewhere", key, moved)

    def _later(self, key: Hashable, seconds: float) -> None:
        """Look at the worker again when its grace ends (one timer per worker; the latest wins)."""
        previous = self._timers.pop(key, None)
        if previous is not None:
            previous.cancel()
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(seconds + 0.05, self._due, key)

    def _due(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.enqueue(key)
