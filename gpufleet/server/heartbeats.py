"""Heartbeats that cost next to nothing: received in memory, written in batches.

A plain heartbeat (no status change, not leaving) of a worker the server knows to be heartbeating
(``ready``, ``unreachable`` or ``maintenance``, or ``not_ready`` only because its first probe is
still to come: thousands registering at once) is answered from memory: the server's clock time of
its arrival is noted, and a background task writes the noted times to ``workers.heartbeat_at`` once
per ``flush_interval`` with one set-based ``UPDATE … WHERE id IN (…)``. Everything else — the first
heartbeat after a server restart, a worker coming back from ``not_ready``, a status change, a
``leaving`` heartbeat — takes the transaction of ``services.workers.heartbeat`` as before.

Invariants:
- Liveness is judged on the server's clock, from what is in the database (any server replica can
  judge it): the stale-worker sweep flushes first, so a heartbeat the server has answered is never
  judged missing.
- A flush writes each worker's own arrival, rounded down to a tick (a quarter of the flush interval),
  with one ``UPDATE`` per tick (four or five per flush): a stored ``heartbeat_at`` is never later than
  the worker's real heartbeat and at most one tick earlier, however late the flush runs or however
  many failed before it (arrivals kept for a retry are never merged with later ones).
- A server that crashes loses at most the arrivals since its last flush: a heartbeat received just
  before the crash is at most one flush interval old after the restart, and the sweep's grace after a
  restart covers that.
- The worker states used by the fast path follow every committed change of a worker (the database's
  event listener), so a worker marked ``not_ready`` goes through the transaction again on its next
  heartbeat, which revives it. Changes may have been missed while this server could not hear the
  others (``forget``: the relay reconnected): then every worker takes the transaction again.
- A server that cannot write stops answering from memory: once its last successful flush is older
  than ``fast_window`` (about one heartbeat interval) every heartbeat takes the transaction, which
  fails while the database is unreachable, so the worker fails over to a server that can write it —
  instead of being judged lost by the leader while it is answered here.
- A flush never moves ``heartbeat_at`` backwards (another server may have written a later one), and
  arrivals kept for a retry are dropped once older than ``stale_window``: too old to keep anyone alive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, text, update

from gpufleet.common.clock import utcnow
from gpufleet.db.session import Database
from gpufleet.db.tables import Worker
from gpufleet.schemas.events import Event, EventKind, EventType
from gpufleet.schemas.states import WorkerState
from gpufleet.schemas.workers import HeartbeatAck
from gpufleet.server.services.workers import awaiting_first_probe

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 1.0  # seconds between writes of the arrivals noted in memory
TICKS_PER_FLUSH = 4  # arrivals are stored rounded down to a quarter of the flush interval
LIVE = frozenset({WorkerState.READY.value, WorkerState.UNREACHABLE.value, WorkerState.MAINTENANCE.value})


class HeartbeatLedger:
    def __init__(
        self,
        db: Database,
        flush_interval: float = FLUSH_INTERVAL,
        fast_window: float | None = None,
        stale_window: float | None = None,
    ) -> None:
        """``fast_window``: how long after the last successful flush heartbeats are still answered from
        memory (default 4 flush intervals); ``stale_window``: the age past which a kept arrival is dropped."""
        self.db = db
        self.flush_interval = flush_interval
        self.fast_window = fast_window if fast_window is not None else 4 * flush_interval
        self.stale_window = stale_window if stale_window is not None else 3 * self.fast_window
        self._written_at = _now()  # monotonic time of the last flush that succeeded (or had nothing to write)
        self._failing = False  # the last write failed: an empty flush checks the database is back
        self._states: dict[int, tuple[str, str | None]] = {}  # worker id -> (state, message), as committed
        self._arrivals: dict[int, datetime] = {}  # worker id -> earliest unwritten arrival
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        db.add_listener(self.on_event)

    # --- fed by the database and the slow path ----------------------------------------------------
    def on_event(self, event: Event) -> None:
        if event.kind != EventKind.WORKERS or event.id is None:
            return
        if event.type == EventType.DELETED:
            self._states.pop(event.id, None)
            self._arrivals.pop(event.id, None)
        elif event.object and isinstance(event.object.get("state"), str):
            self._states[event.id] = (event.object["state"], event.object.get("state_message"))

    def forget(self) -> None:
        """Changes of workers may have been missed (the relay reconnected): every worker's next heartbeat
        takes the transaction, which revives one marked ``not_ready`` meanwhile."""
        self._states.clear()

    def known(self, ack: HeartbeatAck) -> None:
        """What the transaction of a heartbeat left the worker in."""
        self._states[ack.id] = (ack.state.value, ack.state_message)

    # --- the fast path ------------------------------------------------------------------------------
    def beat(self, worker_id: int) -> HeartbeatAck | None:
        """Note a plain heartbeat and answer it, or None when it needs the transaction."""
        if _now() - self._written_at > self.fast_window:
            return None  # flushes are failing: the transaction tells the worker (it fails over)
        known = self._states.get(worker_id)
        if known is None or not (known[0] in LIVE or awaiting_first_probe(*known)):
            return None
        self._arrivals.setdefault(worker_id, utcnow())
        return HeartbeatAck(id=worker_id, state=WorkerState(known[0]), state_message=known[1])

    # --- writing ------------------------------------------------------------------------------------
    async def flush(self) -> int:
        """Write the noted arrivals (one UPDATE per tick); returns how many workers it covered."""
        async with self._lock:
            return await self._flush()

    @asynccontextmanager
    async def flushed(self) -> AsyncIterator[None]:
        """Write the noted arrivals, and hold further flushes until the block ends: the stale sweep
        judges in it, seeing every heartbeat answered so far, and its set-based UPDATE never runs beside
        a flush's (two of them over the same rows, in different orders, deadlock on PostgreSQL)."""
        async with self._lock:
            await self._flush()
            yield

    async def _flush(self) -> int:
        if not self._arrivals:
            if self._failing:  # nothing to write, but is the database back? (else the fast path resumes)
                async with self.db.read() as session:
                    await session.execute(text("SELECT 1"))
                self._failing = False
            self._written_at = _now()
            return 0
        batch, self._arrivals = self._arrivals, {}
        started = _now()  # what a success vouches for: the arrivals noted until then are written
        try:
            async with self.db.transaction() as session:
                for at, ids in _by_tick(batch, self.flush_interval / TICKS_PER_FLUSH).items():
                    await session.execute(
                        update(Worker)
                        .where(Worker.id.in_(ids), or_(Worker.heartbeat_at.is_(None), Worker.heartbeat_at < at))
                        .values(heartbeat_at=at)  # greatest(stored, at): never backwards
                        .execution_options(synchronize_session=False)
                    )
        except BaseException:
            self._failing = True
            too_old = utcnow() - timedelta(seconds=self.stale_window)
            for worker_id, at in batch.items():  # keep them for the next flush, unless too old to matter
                if at >= too_old:
                    self._arrivals[worker_id] = min(at, self._arrivals.get(worker_id, at))
            raise
        self._written_at = started
        self._failing = False
        return len(batch)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="heartbeat-flush")

    async def stop(self) -> None:
        """Stop the writer and write what is noted. Cancelling it mid-commit is safe: a batch put back
        and written again stores the same times (unlike the gateway's usage sums, which would double)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.flush()
        except Exception:  # the server is stopping: the next start grants workers a grace
            logger.exception("could not write the last heartbeat times before stopping")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
            except Exception:
                logger.exception("could not write heartbeat times; retrying in %.1fs", self.flush_interval)


def _now() -> float:
    return time.monotonic()


def _by_tick(arrivals: dict[int, datetime], tick: float) -> dict[datetime, list[int]]:
    """Worker ids grouped by their arrival rounded down to a multiple of ``tick`` seconds (UTC epoch)."""
    groups: dict[datetime, list[int]] = defaultdict(list)
    for worker_id, at in arrivals.items():
        stamp = at.timestamp()
        groups[datetime.fromtimestamp(stamp - stamp % tick, tz=UTC)].append(worker_id)
    return groups
