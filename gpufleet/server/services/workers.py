"""Workers: registration, heartbeats, liveness, admin changes.

Liveness is judged by the server's clock: ``heartbeat_at`` is the server's time
of receipt. States:

- ``ready``: heartbeats arrive and the server's last probe of ip:port succeeded;
- ``unreachable``: heartbeats arrive but the probe failed;
- ``not_ready``: no heartbeat for 3 intervals, a clean shutdown, or not probed yet;
- ``maintenance``: shown instead of ``ready`` while an admin has set the worker's
  maintenance flag (``_show``); liveness is still tracked underneath.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

import gpufleet
from gpufleet.common import version_skew
from gpufleet.common.clock import utcnow
from gpufleet.common.errors import Conflict, Forbidden, InvalidInput, NotFound
from gpufleet.common.worker_api_token import token_hash
from gpufleet.db.session import Database, record_credentials_change, record_event
from gpufleet.db.tables import ModelInstance, Worker
from gpufleet.schemas.events import Event, EventKind, EventType
from gpufleet.schemas.states import InstanceState, WorkerState
from gpufleet.schemas.workers import (
    WorkerHeartbeat,
    WorkerPublic,
    WorkerRegister,
    WorkerRegistered,
    WorkerStatus,
    WorkerUpdate,
)
from gpufleet.server import secrets
from gpufleet.server.listing import EVERY_ROW, ListParams, count
from gpufleet.server.principal import Principal, PrincipalKind
from gpufleet.server.services import instances as instance_service
from gpufleet.server.services import rpc_servers
from gpufleet.server.services.devices import sync_devices
from gpufleet.server.services.worker_public import AUTO_LABELS, auto_labels, to_public
from gpufleet.server.services.worker_rename import rename_device_rows, rename_placements

logger = logging.getLogger(__name__)

STALE_AFTER_HEARTBEATS = 3
# Instance states that mean "an engine is, or is being, set up on that worker".
# Worker states that mean "its heartbeats arrive".
HEARTBEATING = (WorkerState.READY, WorkerState.UNREACHABLE, WorkerState.MAINTENANCE)
PLACED_STATES = (
    InstanceState.SCHEDULED,
    InstanceState.DOWNLOADING,
    InstanceState.STARTING,
    InstanceState.RUNNING,
)


def _changed(session: AsyncSession, row: Worker, kind: EventType = EventType.MODIFIED) -> WorkerPublic:
    public = to_public(row)
    record_event(session, Event(kind=EventKind.WORKERS, type=kind, id=row.id, object=public.model_dump(mode="json")))
    return public


MAINTENANCE_MESSAGE = "in maintenance: running instances stay, nothing new is placed here"


def _show(row: Worker, state: str, message: str | None) -> None:
    """Store a liveness state; a ready worker in maintenance shows ``maintenance`` instead.

    A worker in maintenance that stops heartbeating still becomes ``not_ready``: that it is
    dead matters more than that it was set aside.
    """
    if row.maintenance and state == WorkerState.READY:
        row.state, row.state_message = WorkerState.MAINTENANCE, MAINTENANCE_MESSAGE
    else:
        row.state, row.state_message = state, message


AWAITING_FIRST_PROBE = "waiting for the server to reach the worker"


def awaiting_first_probe(state: str, message: str | None) -> bool:
    """A worker registered (or re-registered) and heartbeating, not yet probed: its heartbeats change
    nothing but their time until the probe decides, so they may be answered from memory too."""
    return state == WorkerState.NOT_READY and (message or "").startswith(AWAITING_FIRST_PROBE)


def _live_state(row: Worker, probe_detail: str | None = None) -> tuple[str, str | None]:
    """The liveness a worker that is heartbeating deserves, given the last reachability probe."""
    if row.reachable is None:
        return WorkerState.NOT_READY, f"{AWAITING_FIRST_PROBE} at {row.ip}:{row.port}"
    if row.reachable is False:
        if probe_detail is None and row.state == WorkerState.UNREACHABLE:
            return row.state, row.state_message  # keep the last probe's detail
        return WorkerState.UNREACHABLE, (
            f"heartbeats arrive, but the server cannot reach the worker at {row.ip}:{row.port}"
            f"{': ' + probe_detail if probe_detail else ''}. Check --worker-ip / --worker-port and firewalls."
        )
    return WorkerState.READY, None


async def register(db: Database, principal: Principal, body: WorkerRegister) -> WorkerRegistered:
    """Create a worker, or re-attach (and maybe rename or move) an existing one.

    Who may do what — a worker's credential says *which* worker this is; the cluster token says the
    caller may join machines to the cluster. Changing a worker's name or address takes both:

    - cluster token, no ``credential`` in the body: a new worker (409 if the name is taken);
    - cluster token and the worker's own ``credential`` in the body (what the agent sends when it
      starts with a ``worker.json``): that worker, renamed and moved to what the body says — same
      id, devices and instances (``worker_rename``); 409 naming the other worker if the new name
      is taken, 404 if no worker holds the credential (it was deleted: register without it);
    - the worker's credential alone (a bearer, no cluster token): re-attaches the worker as it is.
      It may refresh status, labels and its API token, but never change the name, ip or port — 409
      saying so. A stolen or replayed credential cannot rename the worker or point the server at
      another address (the agent's heartbeats carry no name or address at all).

    First of all, the worker's gpufleet version must be within one minor version of the server's
    (``common.version_skew``): 409 ``version_skew`` saying what to upgrade otherwise.
    """
    # ``gpufleet.__version__`` read at each call, not bound at import: a test stands in for another release
    verdict = version_skew.check(body.status.gpufleet_version, gpufleet.__version__)
    if verdict.skew == version_skew.Skew.ONE_MINOR:
        logger.warning("worker %r joins: %s", body.name, verdict.message)
    try:
        return await _register(db, principal, body)
    except IntegrityError as exc:
        raise _integrity_conflict(body, exc) from exc


def _integrity_conflict(body: WorkerRegister, exc: IntegrityError) -> Conflict:
    """Say what really clashed: only a unique name taken between our check and our write is a race."""
    cause = str(exc.orig)
    if "workers.name" in cause or "workers_name_key" in cause:
        return Conflict(f"a worker named {body.name!r} was registered at the same moment; choose another --worker-name")
    return Conflict(f"registering worker {body.name!r} conflicts with stored data: {cause.splitlines()[0]}")


async def _registering_row(session: AsyncSession, principal: Principal, body: WorkerRegister) -> Worker | None:
    """The existing worker this registration is for, or None for a new one (see ``register``)."""
    if principal.kind == PrincipalKind.WORKER:
        row = await session.get(Worker, principal.worker_id)
        if row is None:
            raise NotFound("this worker was deleted; register again with the cluster token")
        moved = [
            f"{what} {old!r} → {new!r}"
            for what, old, new in (
                ("name", row.name, body.name),
                ("ip", row.ip, str(body.ip)),
                ("port", row.port, body.port),
            )
            if old != new
        ]
        if moved:
            raise Conflict(
                f"a worker credential alone may not rename its worker or change its address ({', '.join(moved)}); "
                "the worker agent does that when it restarts (it registers with the cluster token and its stored "
                "credential)"
            )
        return row
    if body.credential is None:
        return None
    row = (
        await session.execute(select(Worker).where(Worker.credential_hash == secrets.sha256(body.credential)))
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(
            "no worker holds this credential (the worker was deleted): register without it to join as a new worker"
        )
    return row


async def _register(db: Database, principal: Principal, body: WorkerRegister) -> WorkerRegistered:
    credential: str | None = None
    async with db.transaction() as session:
        row = await _registering_row(session, principal, body)
        clash = (await session.execute(select(Worker).where(Worker.name == body.name))).scalar_one_or_none()
        if row is not None and clash is not None and clash.id != row.id:
            raise Conflict(
                f"cannot rename worker {row.name!r} (id {row.id}) to {body.name!r}: another worker (id {clash.id}) "
                "has that name; choose another --worker-name, or delete that worker (DELETE /api/workers/{id})"
            )
        if row is None:
            if clash is not None:
                raise Conflict(
                    f"a worker named {body.name!r} is already registered. If this is that machine, start it "
                    "with the data dir holding its worker.json credential; otherwise pick another --worker-name, "
                    "or delete the old worker (DELETE /api/workers/{id})."
                )
            credential = secrets.new_worker_credential()
            row = Worker(
                name=body.name, credential_hash=secrets.sha256(credential), labels={}, devices=[], maintenance=False
            )
            session.add(row)
        old_name = row.name
        row.name = body.name
        row.ip = str(body.ip)
        row.port = body.port
        # new at every worker start (the old one is void); only its hash is kept
        row.api_token_hash = token_hash(body.api_token) if body.api_token is not None else None
        row.system_reserved = body.system_reserved.model_dump()
        row.status = body.status.model_dump(mode="json")
        row.labels = {**row.labels, **body.labels, **auto_labels(body.status)}
        row.heartbeat_at = utcnow()
        row.reachable = None  # address may have changed: probe again before calling it ready
        _show(row, *_live_state(row))
        await session.flush()
        if credential is None and old_name != body.name:
            rename_device_rows(row)
            await rename_placements(session, row.id, old_name, body.name)
        sync_devices(row, body.status.devices)
        await session.flush()
        public = _changed(session, row, EventType.ADDED if credential else EventType.MODIFIED)
    return WorkerRegistered(worker=public, credential=credential, server_version=gpufleet.__version__)


async def heartbeat(db: Database, worker_id: int, body: WorkerHeartbeat) -> WorkerPublic:
    async with db.transaction() as session:
        row = await session.get(Worker, worker_id)
        if row is None:
            raise NotFound("this worker was deleted; register again with the cluster token")
        before = (row.state, row.state_message)
        if body.leaving:
            _show(row, WorkerState.NOT_READY, f"worker shut down at {utcnow():%Y-%m-%d %H:%M:%S} UTC")
            await _lose_instances(session, row)
        else:
            row.heartbeat_at = utcnow()
            _show(row, *_live_state(row))
        if body.status is not None:
            row.status = body.status.model_dump(mode="json")
            row.labels = {**row.labels, **auto_labels(body.status)}
            sync_devices(row, body.status.devices)
        await session.flush()
        if body.status is not None or before != (row.state, row.state_message):
            return _changed(session, row)
        return to_public(row)


async def record_probe(db: Database, worker_id: int, reachable: bool, detail: str | None) -> None:
    """Store the result of the server's probe of the worker's port."""
    async with db.transaction() as session:
        row = await session.get(Worker, worker_id)
        if row is None:
            return
        before = (row.state, row.state_message)
        # A probe decides between ready and unreachable for a worker that is heartbeating; it never
        # revives one that went quiet (not_ready after a first probe): only a heartbeat does that.
        awaiting_first_probe = row.state == WorkerState.NOT_READY and row.reachable is None
        row.reachable = reachable
        if row.state in HEARTBEATING or awaiting_first_probe:
            _show(row, *_live_state(row, detail or "probe failed"))
        if before != (row.state, row.state_message):
            await session.flush()
            _changed(session, row)


async def mark_stale(db: Database, heartbeat_interval: float, sweep_period: float = 0.0) -> list[int]:
    """One set-based UPDATE: workers without a heartbeat for 3 intervals become ``not_ready``.

    The sweep runs every ``sweep_period``; marking workers whose silence is within one
    period of the window keeps the promise that a dead worker leaves ``ready`` no later than
    3 intervals after its last heartbeat (and so after it died), never a sweep period later.
    Their placed instances become ``unreachable``. Returns the ids of the workers marked.
    """
    window = STALE_AFTER_HEARTBEATS * heartbeat_interval
    cutoff = utcnow() - timedelta(seconds=window - sweep_period)
    message = f"no heartbeat for over {window:g}s ({STALE_AFTER_HEARTBEATS} × the {heartbeat_interval:g}s interval)"
    async with db.transaction() as session:
        ids = (
            (
                await session.execute(
                    update(Worker)
                    .where(
                        Worker.state.in_([s.value for s in HEARTBEATING]),
                        Worker.heartbeat_at < cutoff,
                    )
                    .values(state=WorkerState.NOT_READY.value, state_message=message)
                    .returning(Worker.id)
                    .execution_options(synchronize_session=False)
                )
            )
            .scalars()
            .all()
        )
        for worker_id in ids:
            row = await session.get(Worker, worker_id, populate_existing=True)
            if row is not None:
                await _lose_instances(session, row)
                _changed(session, row)
    return list(ids)


async def _lose_instances(session: AsyncSession, worker: Worker) -> None:
    rows = (
        (
            await session.execute(
                select(ModelInstance).where(
                    ModelInstance.worker_id == worker.id,
                    ModelInstance.state.in_([s.value for s in PLACED_STATES]),
                )
            )
        )
        .scalars()
        .all()
    )
    for instance in rows:
        await instance_service.transition_and_publish(
            session,
            instance,
            InstanceState.UNREACHABLE,
            f"worker {worker.name} is {worker.state}: {worker.state_message}",
        )
    await rpc_servers.lose_parts(session, worker)


async def list_workers(db: Database, params: ListParams = EVERY_ROW) -> tuple[list[WorkerPublic], int | None]:
    """Workers by name (their devices in one more query), filtered and paged; the total when paged."""
    query = params.filtered(select(Worker), state=Worker.state, labels=Worker.labels, name=Worker.name)
    async with db.read() as session:
        total = await count(session, query) if params.limit is not None else None
        rows = (await session.execute(params.paged(query.order_by(Worker.name)))).scalars().all()
    return [to_public(row) for row in rows], total


async def get_worker(db: Database, principal: Principal, worker_id: int) -> WorkerPublic:
    if principal.kind == PrincipalKind.WORKER and principal.worker_id != worker_id:
        raise Forbidden("a worker credential may only read its own worker")
    async with db.read() as session:
        row = await session.get(Worker, worker_id)
    if row is None:
        raise NotFound(f"worker {worker_id} does not exist")
    return to_public(row)


async def update_worker(db: Database, worker_id: int, body: WorkerUpdate) -> WorkerPublic:
    async with db.transaction() as session:
        row = await session.get(Worker, worker_id)
        if row is None:
            raise NotFound(f"worker {worker_id} does not exist")
        if body.labels is not None:
            automatic = auto_labels(WorkerStatus.model_validate(row.status))
            for key in AUTO_LABELS:
                if key in body.labels and body.labels[key] != automatic[key]:
                    raise InvalidInput(f"label {key!r} is set automatically from the worker's hardware", field="labels")
            row.labels = {**body.labels, **automatic}
        if body.state == "maintenance":
            row.maintenance = True
            if row.state == WorkerState.READY:
                _show(row, WorkerState.READY, None)
        elif body.state == "ready" and row.maintenance:
            row.maintenance = False
            if row.state == WorkerState.MAINTENANCE:
                _show(row, WorkerState.READY, None)
        await session.flush()
        return _changed(session, row)


async def delete_worker(db: Database, worker_id: int) -> None:
    """Forget a worker. Its instances go back to ``pending`` so they can be placed elsewhere."""
    async with db.transaction() as session:
        row = await session.get(Worker, worker_id)
        if row is None:
            raise NotFound(f"worker {worker_id} does not exist")
        instances = await session.execute(select(ModelInstance).where(ModelInstance.worker_id == worker_id))
        for instance in instances.scalars().all():
            await instance_service.release_or_forget(session, instance, f"worker {row.name} was deleted")
        public = to_public(row)
        await session.delete(row)
        record_credentials_change(session)  # its credential stops working at once, cached or not
        record_event(
            session,
            Event(
                kind=EventKind.WORKERS,
                type=EventType.DELETED,
                id=worker_id,
                object=public.model_dump(mode="json"),
            ),
        )
