"""Each deployment's waiting line: requests beyond its instances' free slots wait here for one.

An instance takes at most ``max_concurrent`` requests at once (its engine's parallel slots unless
set). A request takes a free slot at once when nobody is waiting for that deployment; otherwise it
joins the line, and is handed a slot when one frees (a request ends) or appears (an instance starts,
e.g. one loaded on demand for it).

Fair across callers: every caller key (an API key, or a session's user) has its own first-in,
first-out queue, and keys take turns, in the order they joined. One key's burst of a hundred
requests therefore delays another key's single request by at most one turn.

A full line (``max_queue`` waiting) refuses at once (``LineFull``: 429); a request that waited
``queue_timeout`` gives up (``WaitedTooLong``: 503); a request whose client went away leaves the
line at once (``ClientGone``).

Invariants:
- A slot is acquired (``Balancer.acquire``) before a waiter is handed it, and every slot handed out
  is released exactly once: by the request when it ends, or here when the waiter is already gone.
- ``queued(model)`` is the number of live waiters; a waiter leaves its line exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field

from gpufleet.server.gateway.balancer import Balancer
from gpufleet.server.gateway.routing import Endpoint, Route


class LineFull(Exception):
    """``max_queue`` requests are already waiting."""


class WaitedTooLong(Exception):
    """No slot within ``queue_timeout``."""


class ClientGone(Exception):
    """The client closed its connection while waiting."""


@dataclass(eq=False)
class _Waiter:
    key: Hashable
    since: float
    future: asyncio.Future[Endpoint]


@dataclass
class _Line:
    """One deployment's waiters: a FIFO per caller key, keys served in turn."""

    by_key: dict[Hashable, deque[_Waiter]] = field(default_factory=dict)
    turns: deque[Hashable] = field(default_factory=deque)
    size: int = 0

    def push(self, waiter: _Waiter) -> None:
        queue = self.by_key.get(waiter.key)
        if queue is None:
            queue = self.by_key[waiter.key] = deque()
            self.turns.append(waiter.key)
        queue.append(waiter)
        self.size += 1

    def pop_next(self) -> _Waiter:
        key = self.turns.popleft()
        queue = self.by_key[key]
        waiter = queue.popleft()
        self.size -= 1
        if queue:
            self.turns.append(key)  # its next request waits for the other keys' turns
        else:
            del self.by_key[key]
        return waiter

    def remove(self, waiter: _Waiter) -> None:
        queue = self.by_key.get(waiter.key)
        if queue is None or waiter not in queue:
            return  # already handed a slot
        queue.remove(waiter)
        self.size -= 1
        if not queue:
            del self.by_key[waiter.key]
            self.turns.remove(waiter.key)

    def oldest(self) -> float | None:
        return min((queue[0].since for queue in self.by_key.values()), default=None)


class WaitingLines:
    def __init__(self, balancer: Balancer, clock: Callable[[], float] = time.monotonic) -> None:
        self.balancer = balancer
        self._clock = clock
        self._lines: dict[int, _Line] = {}  # deployment id -> its line (only while someone waits)
        self._routes: dict[int, Route] = {}  # the newest route seen of each deployment with a line
        self.waited: Callable[[Route, float], None] = lambda route, seconds: None  # metrics hook

    def take_now(self, route: Route, exclude: Iterable[int] = ()) -> Endpoint | None:
        """A free slot on ``route``, acquired, ignoring the line (a retry elsewhere has had its turn)."""
        endpoint = self.balancer.pick(route, exclude, limit=route.admission.max_concurrent)
        if endpoint is not None:
            self.balancer.acquire(endpoint)
        return endpoint

    async def take(
        self, route: Route, key: Hashable, client_gone: Callable[[], Awaitable[object]] | None = None
    ) -> Endpoint:
        """A slot on one of ``route``'s instances, acquired: at once if free and nobody waits, else in turn."""
        line = self._lines.get(route.model_id)
        if line is None or line.size == 0:
            endpoint = self.take_now(route)
            if endpoint is not None:
                return endpoint
        if (line is not None and line.size >= route.admission.max_queue) or route.admission.max_queue == 0:
            raise LineFull
        line = self._lines.setdefault(route.model_id, _Line())
        self._routes[route.model_id] = route
        waiter = _Waiter(key, self._clock(), asyncio.get_running_loop().create_future())
        line.push(waiter)
        self._serve(route.model_id)
        return await self._wait(route, line, waiter, client_gone)

    async def _wait(
        self, route: Route, line: _Line, waiter: _Waiter, client_gone: Callable[[], Awaitable[object]] | None
    ) -> Endpoint:
        gone = asyncio.ensure_future(client_gone()) if client_gone is not None else None
        handed: Endpoint | None = None
        try:
            waiting: set[asyncio.Future[object]] = {waiter.future}  # type: ignore[arg-type]
            if gone is not None:
                waiting.add(gone)
            await asyncio.wait(waiting, timeout=route.admission.queue_timeout, return_when=asyncio.FIRST_COMPLETED)
            if waiter.future.done() and not waiter.future.cancelled():
                handed = waiter.future.result()
                self.waited(route, self._clock() - waiter.since)
                return handed
            if gone is not None and gone.done():
                raise ClientGone
            raise WaitedTooLong
        finally:
            if gone is not None:
                gone.cancel()
            if handed is None:
                if waiter.future.done() and not waiter.future.cancelled():
                    self.release(route.model_id, waiter.future.result())  # handed a slot as it gave up
                else:
                    waiter.future.cancel()
                    line.remove(waiter)
                self._forget_if_empty(route.model_id)

    def release(self, model_id: int, endpoint: Endpoint) -> None:
        """A request on ``endpoint`` ended: its slot goes to the next waiter, if any."""
        self.balancer.release(endpoint)
        self._serve(model_id)

    def update(self, routes: Mapping[str, Route]) -> None:
        """The routing table changed: serve waiters from instances that appeared (or settings changed)."""
        by_id = {r.model_id: r for r in routes.values()}
        for model_id in list(self._lines):
            route = by_id.get(model_id)
            if route is not None:
                self._routes[model_id] = route
                self._serve(model_id)

    def queued(self, model_id: int) -> int:
        line = self._lines.get(model_id)
        return line.size if line is not None else 0

    def waiting_models(self) -> list[int]:
        return [model_id for model_id, line in self._lines.items() if line.size]

    def oldest_wait(self, model_id: int) -> float | None:
        """Seconds the longest-waiting request of the deployment has waited (None: nobody waits)."""
        line = self._lines.get(model_id)
        since = line.oldest() if line is not None else None
        return None if since is None else self._clock() - since

    def _serve(self, model_id: int) -> None:
        line, route = self._lines.get(model_id), self._routes.get(model_id)
        while line is not None and route is not None and line.size:
            endpoint = self.take_now(route)
            if endpoint is None:
                return
            waiter = line.pop_next()
            waiter.future.set_result(endpoint)

    def _forget_if_empty(self, model_id: int) -> None:
        line = self._lines.get(model_id)
        if line is not None and line.size == 0:
            del self._lines[model_id]
            self._routes.pop(model_id, None)
