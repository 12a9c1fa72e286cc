"""Everything one server process holds: settings, database, bus, controllers.

Built and prepared (migrations, bootstrap admin, cluster token) before the HTTP
app starts, so a bad database URL or an unwritable data dir is reported as one
clear line instead of a failing web app.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError, IntegrityError

from gpufleet.common.paths import make_private_dir, write_secret_file
from gpufleet.config import Settings
from gpufleet.db.migrate import upgrade
from gpufleet.db.session import Database, DatabaseUnavailable
from gpufleet.schemas.events import Event, EventKind, EventType
from gpufleet.schemas.model_events import ModelEventKind
from gpufleet.schemas.states import InstanceState, WorkerState
from gpufleet.server import secrets
from gpufleet.server.auth import PrincipalResolver
from gpufleet.server.bus import EventBus
from gpufleet.server.controllers.autoscale import AutoscaleController
from gpufleet.server.controllers.deployments import DeploymentsController, deployment_key, worker_key
from gpufleet.server.controllers.reschedule import RescheduleController
from gpufleet.server.controllers.scheduling import PENDING, SchedulingController
from gpufleet.server.controllers.worker_health import StaleWorkerSweep, WorkerProbeController
from gpufleet.server.gateway.service import Gateway
from gpufleet.server.heartbeats import FLUSH_INTERVAL, HeartbeatLedger
from gpufleet.server.leader import Leadership, leadership_for
from gpufleet.server.notify import ChangeRelay, public_loader
from gpufleet.server.services.users import bootstrap_admin
from gpufleet.server.services.workers import STALE_AFTER_HEARTBEATS
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
    reschedule: RescheduleController = field(init=False)  # a lost worker's instances, placed elsewhere
    autoscale: AutoscaleController = field(init=False)  # bounded deployments: up on queueing, down when idle
    sweep: StaleWorkerSweep = field(init=False)
    worker_calls: WorkerCalls = field(init=False)  # the server calling workers' own APIs (logs)
    gateway: Gateway = field(init=False)  # the OpenAI-compatible /v1 routes' state
    heartbeats: HeartbeatLedger = field(init=False)  # plain heartbeats, noted in memory, written in batches
    leadership: Leadership = field(init=False)  # runs the leader-only tasks while this server leads
    relay: ChangeRelay | None = field(init=False, default=None)  # PostgreSQL: other servers' changes

    def __post_init__(self) -> None:
        self.db = Database(self.settings.effective_database_url)
        self.bus = EventBus()
        interval = self.settings.heartbeat_interval
        model_dirs = self.settings.model_dirs  # local_path models are read only there
        self.deployments = DeploymentsController(self.db, model_dirs=model_dirs)
        self.probes = WorkerProbeController(self.db, interval)
        self.reschedule = RescheduleController(self.db, interval, self.settings.reschedule_grace)
        stale_window = STALE_AFTER_HEARTBEATS * interval
        self.heartbeats = HeartbeatLedger(
            self.db, min(FLUSH_INTERVAL, interval / 4), fast_window=interval, stale_window=stale_window
        )
        self.sweep = StaleWorkerSweep(self.db, interval, self.heartbeats)
        self.worker_calls = WorkerCalls(lambda: self.cluster_token)
        # the cluster token is read at each request: it is only known once ``prepare`` ran
        self.gateway = Gateway(self.db, self.settings.gateway_timeout, self._engine_key)
        self.scheduler = SchedulingController(
            self.db,
            self.settings.scheduler_resync_interval,
            model_dirs=model_dirs,
            load=self.gateway.load.everywhere,
            scaled=self._count_scaling,
        )
        self.autoscale = AutoscaleController(
            self.db, self.gateway.load.everywhere, model_dirs=model_dirs, scaled=self._count_scaling
        )
        # Which controllers hear of a committed change, by its kind (``_route_event``).
        self._routes: dict[EventKind, Callable[[Event], None]] = {
            EventKind.MODELS: self._model_changed,
            EventKind.INSTANCES: self._instance_changed,
            EventKind.WORKERS: self._worker_changed,
        }
        self.db.add_listener(self.bus.publish)
        self.db.add_listener(self._route_event)
        if self.db.dialect == "postgresql":
            self.relay = ChangeRelay(self.db, public_loader(self.db), self._missed_changes)
        # Leader-only work: exactly one server of those sharing the database runs it (``leader.py``).
        self.leadership = leadership_for(self.db)
        self.leadership.register(self.deployments)
        self.leadership.register(self.scheduler)
        self.leadership.register(self.probes)
        self.leadership.register(self.reschedule)
        self.leadership.register(self.sweep)
        self.leadership.register(self.autoscale)

    async def prepare(self) -> None:
        """Migrate the database, create the admin and the cluster token. Idempotent."""
        make_private_dir(self.settings.data_dir)  # 0700: it holds the database and the secrets
        try:
            await upgrade(self.db)  # replicas starting at once migrate one after another (migrate.py)
            try:
                await bootstrap_admin(self.db, self.settings.initial_password_file, self.settings.bootstrap_password)
            except IntegrityError:
                logger.info("user admin was created by another server starting at the same moment")
        except (DBAPIError, ConnectionError) as exc:  # refused, wrong credentials, unreadable file …
            raise DatabaseUnavailable(f"cannot use the database or data dir: {str(exc).splitlines()[0]}") from exc
        self.cluster_token = self._load_or_create_token()
        self.resolver = PrincipalResolver(self.db, self.cluster_token)

    def _count_scaling(self, model_name: str, kind: ModelEventKind) -> None:
        metrics = self.gateway.metrics
        metrics.child(metrics.scaling, model_name, kind.value).inc()

    def _engine_key(self, instance_id: int) -> str:
        """The API key the gateway presents to an instance's engine (derived, never stored)."""
        return secrets.engine_key(self.cluster_token, instance_id)

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

    async def start_controllers(self) -> None:
        """Every server: the heartbeat ledger, the gateway, the relay; the rest only while it leads."""
        self.heartbeats.start()
        self.gateway.start()
        if self.relay is not None:
            await self.relay.start()
        await self.leadership.start()

    def _missed_changes(self) -> None:
        """Other servers' changes may have been missed: watchers re-list, controllers look again, and
        nothing cached from those changes is trusted any longer."""
        self.bus.close()  # every stream ends; its client reconnects and is sent a fresh listing
        self.heartbeats.forget()  # a worker marked not_ready meanwhile is revived by its next heartbeat
        self.resolver.forget()  # a credential revoked meanwhile is checked in the database again
        self.scheduler.enqueue(PENDING)

    @staticmethod
    def _may_change_placements(event: Event) -> bool:
        """Work to place (a pending instance) or room made (an instance gone, a worker or deployment changed)."""
        if event.kind == EventKind.INSTANCES:
            return event.type == EventType.DELETED or (event.object or {}).get("state") == InstanceState.PENDING
        return event.kind in (EventKind.WORKERS, EventKind.MODELS)

    async def stop(self) -> None:
        await self.leadership.stop()  # leader-only tasks first, then the lock is let go
        if self.relay is not None:
            await self.relay.stop()
        await self.heartbeats.stop()
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
        if lost:
            self.reschedule.enqueue(event.id)  # its instances move once the grace is over
