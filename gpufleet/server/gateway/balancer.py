"""Least-outstanding-requests balancing over a deployment's running instances.

Round robin alone sends a new request to an instance that is still busy with a long generation
while another sits idle (GPUStack issues #5709, #4438). Here each request goes to the instance
with the fewest requests in flight from this server; among equals, turns rotate, so idle replicas
share the load evenly.

An instance that could not be reached is passed over for ``COOL_DOWN`` seconds (unless nothing
else is left): with no requests in flight it would otherwise look the least busy, and draw every
request into a failed connect until its worker reports the crash.

Invariant: ``in_flight[id]`` is the number of requests this process has sent to instance ``id``
and not yet finished (a stream counts until its last byte or its cancellation).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from gpufleet.server.gateway.routing import Endpoint, Route

COOL_DOWN = 5.0  # seconds an unreachable instance is passed over


class Balancer:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.in_flight: dict[int, int] = {}
        self._turn: dict[int, int] = {}  # model id -> round-robin cursor for ties
        self._unreachable_until: dict[int, float] = {}
        self._clock = clock

    def unreachable(self, endpoint: Endpoint) -> None:
        """The instance could not be reached: pass it over for a while."""
        self._unreachable_until[endpoint.instance_id] = self._clock() + COOL_DOWN

    def pick(self, route: Route, exclude: Iterable[int] = (), limit: int | None = None) -> Endpoint | None:
        """The least busy endpoint of ``route`` not in ``exclude`` (instance ids) with fewer than
        ``limit`` requests in flight, preferring those not recently unreachable; None if none is left."""
        skipped = set(exclude)
        candidates = [
            e
            for e in route.endpoints
            if e.instance_id not in skipped and (limit is None or self.in_flight.get(e.instance_id, 0) < limit)
        ]
        if not candidates:
            return None
        if self._unreachable_until:
            now = self._clock()
            for key in [k for k, until in self._unreachable_until.items() if until <= now]:
                del self._unreachable_until[key]
            candidates = [e for e in candidates if e.instance_id not in self._unreachable_until] or candidates
        least = min(self.in_flight.get(e.instance_id, 0) for e in candidates)
        tied = [e for e in candidates if self.in_flight.get(e.instance_id, 0) == least]
        turn = self._turn.get(route.model_id, 0)
        self._turn[route.model_id] = turn + 1
        return tied[turn % len(tied)]

    def acquire(self, endpoint: Endpoint) -> None:
        """Count a request in flight on ``endpoint``; every ``acquire`` is paired with one ``release``."""
        self.in_flight[endpoint.instance_id] = self.in_flight.get(endpoint.instance_id, 0) + 1

    def release(self, endpoint: Endpoint) -> None:
        left = self.in_flight[endpoint.instance_id] - 1
        if left:
            self.in_flight[endpoint.instance_id] = left
        else:
            del self.in_flight[endpoint.instance_id]

    def in_flight_for(self, route: Route) -> int:
        return sum(self.in_flight.get(e.instance_id, 0) for e in route.endpoints)
