"""Loading a deployment on demand: a request found no instance running, so one is asked for.

The request then waits in the deployment's line (``waiting.py``) until the instance runs, and is
forwarded as any other. Asking is a database write (``services.scaling.request_load``: replicas
0 → 1, idempotent). While a load this server asked for is under way, a burst of requests asks once
per ``ASK_AGAIN`` seconds; once a request was handed an instance (``served``), the next request
finding none asks at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from gpufleet.db.session import Database
from gpufleet.server.gateway.errors import GatewayError
from gpufleet.server.gateway.metrics import GatewayMetrics
from gpufleet.server.gateway.routing import Route
from gpufleet.server.services import scaling

logger = logging.getLogger(__name__)

ASK_AGAIN = 2.0  # seconds before this server asks again for the same deployment


class OnDemandLoads:
    def __init__(self, db: Database, metrics: GatewayMetrics, clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.metrics = metrics
        self._clock = clock
        self._asked: dict[int, float] = {}

    async def ask(self, route: Route) -> None:
        """Ask for an instance of ``route`` (which has none running); 503 if the database cannot be written."""
        now = self._clock()
        if now - self._asked.get(route.model_id, -ASK_AGAIN) < ASK_AGAIN:
            return
        self._asked[route.model_id] = now
        try:
            loaded = await scaling.request_load(
                self.db, route.model_id, "a request arrived and no instance was running"
            )
        except (SQLAlchemyError, OSError) as exc:
            self._asked.pop(route.model_id, None)
            logger.warning("gateway: could not ask for an instance of %s: %s", route.model_name, exc)
            raise GatewayError(
                503,
                f"model {route.model_name!r} could not be loaded now; retry shortly",
                "model_not_running",
                retry_after=5,
            ) from None
        if loaded:
            self.metrics.child(self.metrics.scaling, route.model_name, "load").inc()

    def served(self, route: Route) -> None:
        """A request for ``route`` was handed an instance: the load asked for is done."""
        self._asked.pop(route.model_id, None)
