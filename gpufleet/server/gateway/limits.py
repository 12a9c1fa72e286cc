"""Per-key request rate limits: at most N requests in any 60-second window.

A sliding log of request times per key (at most N entries each), so a burst at the end of one
minute and the start of the next cannot pass twice the limit, as a fixed window would allow.
Counted in this server process; with several server replicas each enforces the limit on the
requests it serves.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

WINDOW = 60.0  # seconds


class RequestRateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._log: dict[int, deque[float]] = {}

    def admit(self, key_id: int, limit: int) -> int | None:
        """Record a request of key ``key_id`` if it is within ``limit`` per minute and return None;
        otherwise record nothing and return the seconds to wait (for ``Retry-After``, at least 1)."""
        now = self._clock()
        log = self._log.setdefault(key_id, deque())
        while log and log[0] <= now - WINDOW:
            log.popleft()
        if len(log) >= limit:
            return max(1, math.ceil(log[len(log) - limit] + WINDOW - now))
        log.append(now)
        return None
