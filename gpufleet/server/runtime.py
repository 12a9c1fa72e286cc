"""Everything one server process holds: settings, database, bus, controllers.

Built and prepared (migrations, bootstrap admin, cluster token) before the HTTP
app starts, so a bad database URL or an unwritable data dir is reported as one
clear line instead of a failing web app.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError

from gpufleet.config import Settings
from gpufleet.db.migrate import upgrade
from gpufleet.db.session import Database, DatabaseUnavailable
from gpufleet.schemas.events import Event, EventKind, EventType
from gpufleet.schemas.states import InstanceState, WorkerState
from gpufleet.server import secrets
from gpufleet.server.auth import PrincipalResolver
from gpufleet.server.bus import EventBus
from gpufleet.server.controllers.deployments import DeploymentsController, deployment_key, worker_key
from gpufleet.server.controllers.scheduling import PENDING, SchedulingController
from gpufleet.server.controllers.worker_health import StaleWorkerSweep, WorkerProbeController
from gpufleet.server.gateway.service import Gateway
from gpufleet.server.heartbeats import FLUSH_INTERVAL, HeartbeatLedger
from gpufleet.server.services.users import bootstrap_admin, write_secret_file
from gpufleet.server.worker_calls import WorkerCalls

logger = logging.getLogger(__name__)


@dataclass
class ServerRuntime:
    settings: Settings
    db: Database = field(init=False)
    bus: EventBus = field(init=False)
    cluster_token: str = field(init=False, default="")
    resolver: PrincipalResolver = field(init=False)
    deployments: DeploymentsController = field(init=False)
    scheduler: SchedulingController = field(init=False)
    probes: WorkerProbeController = field(init=False)
    sweep: StaleWorkerSweep = field(init=False)
    worker_calls: WorkerCalls = field(init=False)  # the server calling workers' own APIs (logs)
    gateway: Gateway = field(init=False)  # the OpenAI-compatible /v1 routes' state
    heartbeats: HeartbeatLedger = field(init=False)  # plain heartbeats, noted in memory, written in batches

    def __post_init__(self) -> None:
        self.db = Database(self.settings.effective_database_url)
        self.bus = EventBus()
        interval = self.settings.heartbeat_interval
        self.deployments = DeploymentsController(self.db)
        self.scheduler = SchedulingController(self.db, self.settings.scheduler_resync_interval)
        self.probes = WorkerProbeController(self.db, interval)
        self.heartbeats = HeartbeatLedger(self.db, min(FLUSH_INTERVAL, interval / 4))
        self.sweep = StaleWorkerSweep(self.db, interval, self.heartbeats)
        self.worker_calls = WorkerCalls()
        self.gateway = Gateway(self.db, self.settings.gateway_timeout)
        # Which controllers hear of a committed change, by its kind (``_route_event``).
        self._routes: dict[EventKind, Callable[[Event], None]] = {
            EventKind.MODELS: self._model_changed,
            EventKind.INSTANCES: self._instance_changed,
            EventKind.WORKERS: self._worker_changed,
        }
        self.db.add_listener(self.bus.publish)
        self.db.add_listener(self._route_event)

    async def prepare(self) -> None:
        """Migrate the database, create the admin and the cluster token. Idempotent."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            await upgrade(self.db)
            await bootstrap_admin(self.db, self.settings.initial_password_file, self.settings.bootstrap_password)
        except (DBAPIError, ConnectionError) as exc:  # refused, wrong credentials, unreadable file …
            raise DatabaseUnavailable(f"cannot use the database or data dir: {str(exc).splitlines()[0]}") from exc
        self.cluster_token = self._load_or_create_token()
        self.resolver = PrincipalResolver(self.db, self.cluster_token)

    def _load_or_create_token(self) -> str:
        if self.settings.token:
            return self.settings.token
        path = self.settings.token_file
        if path.exists():
            token = path.read_text().strip()
            if token:
                return token
        token = secrets.new_cluster_token()
        write_secret_file(path, token)
        return token

    def start_controllers(self) -> None:
        self.heartbeats.start()
        self.deployments.start()
        self.scheduler.start()
        self.probes.start()
        self.sweep.start()
        self.gateway.start()

    @staticmethod
    def _may_change_placements(event: Event) -> bool:
        """Work to place (a pending instance) or room made (an instance gone, a worker or deployment changed)."""
        if event.kind == EventKind.INSTANCES:
            return event.type == EventType.DELETED or (event.object or {}).get("state") == InstanceState.PENDING
        return event.kind in (EventKind.WORKERS, EventKind.MODELS)

    async def stop(self) -> None:
        await self.sweep.stop()
        await self.heartbeats.stop()
        await self.probes.stop()
        await self.deployments.stop()
        await self.scheduler.stop()
        await self.worker_calls.aclose()
        await self.gateway.stop()
        await self.db.dispose()

    def _route_event(self, event: Event) -> None:
        """Turn a committed change into controller work (level-triggered: only keys)."""
        if self._may_change_placements(event):
            self.scheduler.enqueue(PENDING)
        route = self._routes.get(event.kind) if event.kind is not None else None
        if route is not None:
            route(event)

    def _model_changed(self, event: Event) -> None:
        if event.id is not None:
            self.deployments.enqueue(event.id)

    def _instance_changed(self, event: Event) -> None:
        key = deployment_key(event)  # an instance gone, running, failed or waiting (a roll may move on)
        if key is not None:
            self.deployments.enqueue(key)

    def _worker_changed(self, event: Event) -> None:
        if event.id is None:
            return
        lost = (event.object or {}).get("state") == WorkerState.NOT_READY
        if event.type == EventType.ADDED or lost:
            self.probes.probe_now(event.id)
        if event.type == EventType.DELETED or lost:
            # Instances stopping on a worker that went away can no longer be acknowledged.
            self.deployments.enqueue(worker_key(event.id))
