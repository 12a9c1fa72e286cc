"""The controller pattern: a de-duplicating work queue, a reconcile loop, a periodic resync.

Invariants:
- A key is queued at most once at a time; a key enqueued while it is being
  reconciled is reconciled again afterwards (never lost, never run twice at once).
- ``reconcile(key)`` reads current desired and actual state itself: it does not
  trust the event that queued it, so a missed or repeated event is harmless.
- A failing reconcile is logged with its traceback and retried with back-off;
  one bad key never stops the loop. A reconcile refused by the leader fence (``FencedOut``: this
  server lost the leadership) is logged in one line: the controller is being stopped.
- Controllers of leader-only work are started and stopped by ``server.leader``: a controller may be
  started again after a stop, its queue kept.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable

from gpufleet.db.session import FencedOut

logger = logging.getLogger(__name__)


class Controller(ABC):
    name = "controller"
    resync_interval: float = 60.0
    max_backoff: float = 30.0
    concurrency = 1  # keys reconciled at once (never the same key twice at once)
    spread_resync = False  # enqueue a resync's keys evenly over the interval instead of all at once

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Hashable] = asyncio.Queue()
        self._queued: set[Hashable] = set()
        self._active: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def enqueue(self, key: Hashable) -> None:
        if key in self._active:
            self._dirty.add(key)
            return
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    @abstractmethod
    async def reconcile(self, key: Hashable) -> None: ...

    @abstractmethod
    async def all_keys(self) -> Iterable[Hashable]: ...

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(), name=f"{self.name}-work-{i}") for i in range(self.concurrency)]
        self._tasks.append(asyncio.create_task(self._resync(), name=f"{self.name}-resync"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def idle(self) -> None:
        """Wait until nothing is queued or running (tests use it to observe converged state)."""
        while self._queued or self._active:
            await asyncio.sleep(0.01)

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._active.add(key)
            try:
                await self.reconcile(key)
                self._failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except FencedOut as exc:
                logger.warning("%s: reconcile(%r) not committed: %s", self.name, key, exc)
                asyncio.get_running_loop().call_later(self.max_backoff, self.enqueue, key)
            except Exception:
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                delay = min(self.max_backoff, 0.1 * 2**failures)
                logger.exception(
                    "%s: reconcile(%r) failed (attempt %d); retrying in %.1fs",
                    self.name,
                    key,
                    failures,
                    delay,
                )
                asyncio.get_running_loop().call_later(delay, self.enqueue, key)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.enqueue(key)

    async def _resync(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                keys = list(await self.all_keys())
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("%s: listing keys for resync failed", self.name)
                keys = []
            if self.spread_resync and keys:
                gap = self.resync_interval / len(keys)
                for position, key in enumerate(keys):  # a steady trickle, never a burst of thousands
                    await asyncio.sleep(max(0.0, started + position * gap - loop.time()))
                    self.enqueue(key)
                await asyncio.sleep(max(0.0, started + self.resync_interval - loop.time()))
            else:
                for key in keys:
                    self.enqueue(key)
                await asyncio.sleep(self.resync_interval)
