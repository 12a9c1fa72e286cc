"""Which running instances serve each deployment: the gateway's routing table.

Read from the database, then kept in memory so a request costs no query. Level-triggered like the
controllers: a committed change that can alter routing (an instance entering or leaving
``running``, a worker's address or state, a deployment added, renamed or deleted) only marks the
table stale, and the next request reloads it whole. A resync every ``RESYNC`` seconds is the
safety net for changes made by another server replica.

Invariant: an endpoint is listed only while its instance is ``running`` on a worker that is
``ready`` (its heartbeats arrive and the server reaches its port), as of the last load.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from gpufleet.db.session import Database
from gpufleet.db.tables import Model, ModelInstance, Worker
from gpufleet.engines import ENGINES, backend_name
from gpufleet.schemas.events import Event, EventKind, EventType
from gpufleet.schemas.models import DEFAULT_MAX_QUEUE, DEFAULT_QUEUE_TIMEOUT
from gpufleet.schemas.states import InstanceState, WorkerState

RESYNC = 10.0  # seconds after which the table is reloaded even without a change seen here
# The model fields that decide how its requests are admitted (``admission_of``).
ADMISSION_COLUMNS = (
    Model.max_concurrent_requests,
    Model.backend,
    Model.backend_parameters,
    Model.max_queue,
    Model.queue_timeout,
    Model.min_replicas,
    Model.max_replicas,
)


@dataclass(frozen=True)
class Endpoint:
    """One running instance: where its engine listens."""

    instance_id: int
    instance_name: str
    url: str  # http://worker-ip:engine-port


@dataclass(frozen=True)
class Admission:
    """How the gateway admits a deployment's requests (its model fields, defaults resolved)."""

    max_concurrent: int = 4  # requests in flight per instance; more wait in the deployment's queue
    max_queue: int = DEFAULT_MAX_QUEUE  # requests waiting; more get 429
    queue_timeout: float = DEFAULT_QUEUE_TIMEOUT  # seconds a request waits before 503
    loadable: bool = False  # bounded with max_replicas >= 1: a request with no instance running loads one


@dataclass(frozen=True)
class Route:
    model_id: int
    model_name: str
    created_at: int  # unix seconds (OpenAI's ``created``)
    endpoints: tuple[Endpoint, ...] = ()
    admission: Admission = Admission()


def admission_of(fields: Mapping[str, Any]) -> Admission:
    """A deployment's admission settings from its row or its public form (same field names)."""
    slots = fields.get("max_concurrent_requests")
    if slots is None:
        engine = ENGINES.get(backend_name(fields.get("backend")))
        slots = engine.parallel_slots(fields.get("backend_parameters") or ()) if engine else 1
    bounded = fields.get("min_replicas") is not None and fields.get("max_replicas") is not None
    return Admission(
        max_concurrent=int(slots),
        max_queue=int(fields.get("max_queue", DEFAULT_MAX_QUEUE)),
        queue_timeout=float(fields.get("queue_timeout", DEFAULT_QUEUE_TIMEOUT)),
        loadable=bounded and int(fields.get("max_replicas") or 0) >= 1,
    )


@dataclass
class _Loaded:
    routes: dict[str, Route] = field(default_factory=dict)
    workers: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (ip, state) as loaded
    running: dict[int, int] = field(default_factory=dict)  # instance id -> engine port, as listed


def engine_url(ip: str, port: int) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}"


class RoutingTable:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._loaded = _Loaded()
        self._stale = True
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()
        self.stale_now: Callable[[], None] = lambda: None  # told when a change makes the table stale
        db.add_listener(self._on_event)

    async def routes(self) -> dict[str, Route]:
        """Every deployment by name, with its running endpoints (reloaded first when stale)."""
        if self._stale or time.monotonic() - self._loaded_at > RESYNC:
            async with self._lock:
                if self._stale or time.monotonic() - self._loaded_at > RESYNC:
                    self._stale = False  # a change committed during the load marks it stale again
                    try:
                        self._loaded = await self._load()
                    except BaseException:
                        self._stale = True  # not loaded: the next request tries again
                        raise
                    self._loaded_at = time.monotonic()
        return self._loaded.routes

    def invalidate(self) -> None:
        self._stale = True

    def _on_event(self, event: Event) -> None:
        if self._stale or event.type in (EventType.PING, EventType.SYNCED) or event.id is None:
            return
        changed = CHANGES.get(event.kind) if event.kind is not None else None
        self._stale = changed is not None and changed(event, self._loaded)
        if self._stale:
            self.stale_now()

    async def _load(self) -> _Loaded:
        async with self.db.read() as session:
            models = (await session.execute(select(Model.id, Model.name, Model.created_at, *ADMISSION_COLUMNS))).all()
            workers = (await session.execute(select(Worker.id, Worker.ip, Worker.state))).all()
            running = (
                await session.execute(
                    select(ModelInstance.id, ModelInstance.name, ModelInstance.model_id, ModelInstance.port, Worker.ip)
                    .join(Worker, Worker.id == ModelInstance.worker_id)
                    .where(
                        ModelInstance.state == InstanceState.RUNNING.value,
                        ModelInstance.port.is_not(None),
                        Worker.state == WorkerState.READY.value,  # maintenance keeps serving what runs
                    )
                    .order_by(ModelInstance.id)
                )
            ).all()
        endpoints: dict[int, list[Endpoint]] = {}
        for instance_id, name, model_id, port, ip in running:
            if model_id is not None and port is not None:  # the query filters on port; typing cannot see it
                endpoints.setdefault(model_id, []).append(Endpoint(instance_id, name, engine_url(ip, port)))
        routes = {
            row.name: Route(
                row.id,
                row.name,
                int(row.created_at.timestamp()),
                tuple(endpoints.get(row.id, ())),
                admission_of(dict(row._mapping)),
            )
            for row in models
        }
        return _Loaded(
            routes=routes,
            workers={worker_id: (ip, state) for worker_id, ip, state in workers},
            running={row[0]: row[3] for row in running if row[3] is not None},
        )


def _model_changed(event: Event, loaded: _Loaded) -> bool:
    if event.type != EventType.MODIFIED:
        return True  # added or deleted
    obj = event.object or {}
    name = obj.get("name")
    route = loaded.routes.get(name) if isinstance(name, str) else None
    return route is None or route.model_id != event.id or route.admission != admission_of(obj)


def _worker_changed(event: Event, loaded: _Loaded) -> bool:
    obj: dict[str, Any] = event.object or {}
    assert event.id is not None
    state = obj.get("state")
    liveness = WorkerState.READY.value if state == WorkerState.MAINTENANCE.value else state  # shown, not stored
    return event.type != EventType.MODIFIED or loaded.workers.get(event.id) != (obj.get("ip"), liveness)


def _instance_changed(event: Event, loaded: _Loaded) -> bool:
    obj: dict[str, Any] = event.object or {}
    is_running = obj.get("state") == InstanceState.RUNNING.value and event.type != EventType.DELETED
    if not is_running:
        return event.id in loaded.running
    return loaded.running.get(event.id or -1) != obj.get("port")


# Whether a committed change of each kind makes the loaded routing stale.
CHANGES: dict[EventKind, Callable[[Event, _Loaded], bool]] = {
    EventKind.MODELS: _model_changed,
    EventKind.WORKERS: _worker_changed,
    EventKind.INSTANCES: _instance_changed,
}
