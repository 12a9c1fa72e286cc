"""A deployment's load as the leader's decisions read it: requests in flight and waiting, on all servers.

Counted by each server's gateway (``gateway.load.LoadTracker``); eviction never stops an instance
of a deployment with load, and the autoscaler steps on it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Load:
    in_flight: int = 0
    queued: int = 0

    @property
    def any(self) -> bool:
        return self.in_flight + self.queued > 0


# Every deployment's load on all servers (``LoadTracker.everywhere``), by deployment id.
LoadView = Callable[[], Awaitable[Mapping[int, Load]]]
