"""Least-outstanding-requests balancing over a deployment's running instances.

Round robin alone sends a new request to an instance that is still busy with a long generation
while another sits idle (GPUStack issues #5709, #4438). Here each request goes to the instance
with the fewest requests in flight from this server; among equals, turns rotate, so idle replicas
share the load evenly.

Invariant: ``in_flight[id]`` is the number of requests this process has sent to instance ``id``
and not yet finished (a stream counts until its last byte or its cancellation).
"""

from __future__ import annotations

from collections.abc import Iterable

from gpufleet.server.gateway.routing import Endpoint, Route


class Balancer:
    def __init__(self) -> None:
        self.in_flight: dict[int, int] = {}
        self._turn: dict[int, int] = {}  # model id -> round-robin cursor for ties

    def pick(self, route: Route, exclude: Iterable[int] = ()) -> Endpoint | None:
        """The least busy endpoint of ``route`` not in ``exclude`` (instance ids); None if none is left."""
        skipped = set(exclude)
        candidates = [e for e in route.endpoints if e.instance_id not in skipped]
        if not candidates:
            return None
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
