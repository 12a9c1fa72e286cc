"""Model instances: reads, and every state change through ``lifecycle.transition``."""

from __future__ import annotations

import re
import secrets as random
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gpufleet.common.clock import utcnow
from gpufleet.common.errors import Conflict, Forbidden, InvalidInput, InvalidTransition, NotFound
from gpufleet.db.session import Database, record_event
from gpufleet.db.tables import ModelInstance, Worker
from gpufleet.schemas.events import Event, EventKind, EventType
from gpufleet.schemas.instances import InstancePublic, InstanceTransition, Subordinate
from gpufleet.schemas.states import InstanceState
from gpufleet.server import lifecycle
from gpufleet.server.listing import EVERY_ROW, ListParams, count
from gpufleet.server.principal import Principal, PrincipalKind

PENDING_MESSAGE = "waiting to be scheduled: no placement has been made for this instance yet"


def to_public(row: ModelInstance) -> InstancePublic:
    return InstancePublic(
        id=row.id,
        name=row.name,
        model_id=row.model_id,
        model_name=row.model_name,
        state=InstanceState(row.state),
        state_message=row.state_message,
        worker_id=row.worker_id,
        worker_name=row.worker_name,
        device_ids=row.device_ids,
        port=row.port,
        pid=row.pid,
        claim=row.claim,
        subordinates=[Subordinate.model_validate(s) for s in row.subordinates],
        restart_count=row.restart_count,
        download_progress=row.download_progress,
        engine_command=row.engine_command,
        version=row.version,
        spec_hash=row.spec_hash,
        ray_head=row.ray_head,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def publish(session: AsyncSession, row: ModelInstance, kind: EventType = EventType.MODIFIED) -> InstancePublic:
    public = to_public(row)
    record_event(session, Event(kind=EventKind.INSTANCES, type=kind, id=row.id, object=public.model_dump(mode="json")))
    return public


def involves_worker(instance: InstancePublic | dict[str, object], worker_id: int) -> bool:
    """Whether a worker has a part in this instance: as its main worker or as an RPC subordinate."""
    data = instance.model_dump() if isinstance(instance, InstancePublic) else instance
    if data.get("worker_id") == worker_id:
        return True
    subordinates = data.get("subordinates") or []
    assert isinstance(subordinates, list)
    return any(s.get("worker_id") == worker_id for s in subordinates)


def instance_name(model_name: str) -> str:
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '-', model_name).strip('-')[:140]}-{random.token_hex(3)}"


def new_pending(
    session: AsyncSession,
    model_id: int,
    model_name: str,
    spec_hash: str | None,
    message: str = PENDING_MESSAGE,
) -> ModelInstance:
    """A new instance of the deployment's current spec (``spec_hash``), waiting for the scheduler."""
    row = ModelInstance(
        name=instance_name(model_name),
        model_id=model_id,
        model_name=model_name,
        spec_hash=spec_hash,
        state=InstanceState.PENDING.value,
        state_message=message,
        device_ids=[],
        subordinates=[],
        restart_count=0,
        version=0,
    )
    session.add(row)
    return row


async def transition_and_publish(
    session: AsyncSession, row: ModelInstance, to: InstanceState, message: str | None, **fields: object
) -> ModelInstance:
    updated = await lifecycle.transition(
        session, row.id, expected_version=row.version, to=to, message=message, **fields
    )
    publish(session, updated)
    return updated


async def release_or_forget(session: AsyncSession, row: ModelInstance, reason: str) -> ModelInstance | None:
    """Take an instance off its worker: back to ``pending`` (if its deployment still wants it; the
    updated row is returned), else delete (None)."""
    if row.state == InstanceState.STOPPING or row.model_id is None:
        await forget(session, row)
        return None
    return await transition_and_publish(
        session,
        row,
        InstanceState.PENDING,
        f"{reason}; {PENDING_MESSAGE}",
        worker_id=None,
        worker_name=None,
        device_ids=[],
        port=None,
        pid=None,
        claim=None,
        subordinates=[],
        download_progress=None,
        engine_command=None,
        ray_head=None,
    )


async def forget(session: AsyncSession, row: ModelInstance) -> None:
    public = to_public(row)
    await session.delete(row)
    record_event(
        session,
        Event(kind=EventKind.INSTANCES, type=EventType.DELETED, id=row.id, object=public.model_dump(mode="json")),
    )


async def list_instances(
    db: Database, principal: Principal, model_id: int | None = None, params: ListParams = EVERY_ROW
) -> tuple[list[InstancePublic], int | None]:
    """Instances by id, filtered (``state``, ``q`` on the name) and paged; a worker sees its own (unpaged)."""
    query = select(ModelInstance)
    if model_id is not None:
        query = query.where(ModelInstance.model_id == model_id)
    query = params.filtered(query, state=ModelInstance.state, name=ModelInstance.name)
    worker_id = principal.worker_id if principal.kind == PrincipalKind.WORKER else None
    async with db.read() as session:
        total = await count(session, query) if params.limit is not None and worker_id is None else None
        paged = (
            query.order_by(ModelInstance.id)
            if worker_id is not None
            else params.paged(query.order_by(ModelInstance.id))
        )
        rows = (await session.execute(paged)).scalars().all()
    result = [to_public(row) for row in rows]
    if worker_id is not None:
        result = [i for i in result if involves_worker(i, worker_id)]
        total = len(result)
    return result, total


async def get_instance(db: Database, principal: Principal, instance_id: int) -> InstancePublic:
    async with db.read() as session:
        row = await session.get(ModelInstance, instance_id)
    if row is None:
        raise NotFound(f"instance {instance_id} does not exist")
    public = to_public(row)
    if principal.kind == PrincipalKind.WORKER:
        assert principal.worker_id is not None
        if not involves_worker(public, principal.worker_id):
            raise NotFound(f"instance {instance_id} does not exist")
    return public


async def worker_transition(
    db: Database, principal: Principal, instance_id: int, body: InstanceTransition
) -> InstancePublic:
    """A worker reports progress or a state change of an instance it runs."""
    async with db.transaction() as session:
        row = await session.get(ModelInstance, instance_id)
        if row is None:
            raise NotFound(f"instance {instance_id} does not exist")
        if principal.kind == PrincipalKind.WORKER and row.worker_id != principal.worker_id:
            raise Forbidden(f"instance {row.name} is not assigned to this worker")
        if body.state in (InstanceState.PENDING, InstanceState.STOPPING, InstanceState.SCHEDULED):
            raise InvalidInput(
                f"a worker cannot move an instance to {body.state.value}; release it or stop it through its deployment",
                field="state",
            )
        fields = body.model_dump(exclude_unset=True, exclude={"expected_version", "state", "state_message"})
        if "ray_head_port" in fields:
            fields["ray_head"] = await ray_head(session, row, fields.pop("ray_head_port"))
            if fields["ray_head"] not in (None, row.ray_head):  # the parts must join it: not ready till they say so
                message = f"joining the cluster head at {fields['ray_head']}"
                fields["subordinates"] = [
                    {**part, "rpc_port": None, "rpc_pid": None, "rpc_host": None, "message": message}
                    for part in row.subordinates
                ]
        updated = await lifecycle.transition(
            session,
            instance_id,
            expected_version=body.expected_version,
            to=body.state,
            message=body.state_message,
            **fields,
        )
        return publish(session, updated)


async def ray_head(session: AsyncSession, row: ModelInstance, port: int | None) -> str | None:
    """Where the main worker's Ray head listens: its advertised ip (as for RPC parts), never an
    address the worker names itself."""
    if port is None or row.worker_id is None:
        return None
    worker = await session.get(Worker, row.worker_id)
    if worker is None:
        return None
    return f"[{worker.ip}]:{port}" if ":" in worker.ip else f"{worker.ip}:{port}"


async def restart(db: Database, principal: Principal, instance_id: int) -> InstancePublic:
    """An admin asks for a fresh engine: the instance goes back to ``pending`` on its deployment.

    Its worker sees it leave (the watch stream says ``deleted``) and stops the old engine; the
    scheduler places it again, maybe elsewhere. Refused (409) while it is not placed (``pending``:
    nothing runs yet) or ``stopping`` (its deployment no longer wants it).
    """
    async with db.transaction() as session:
        row = await session.get(ModelInstance, instance_id)
        if row is None:
            raise NotFound(f"instance {instance_id} does not exist")
        if row.state == InstanceState.PENDING:
            raise Conflict(f"instance {row.name} is pending: not placed on a worker yet, nothing to restart")
        if row.state == InstanceState.STOPPING or row.model_id is None:
            raise Conflict(f"instance {row.name} is stopping: its deployment no longer wants it, nothing to restart")
        updated = await release_or_forget(session, row, f"restarted by {principal.username or principal.kind.value}")
        assert updated is not None  # neither stopping nor orphaned: it went back to pending
        return to_public(updated)


BACKOFF_FIRST = 60.0  # seconds a worker is avoided after the first failed release; doubles each time
BACKOFF_MAX = 1800.0


def record_backoff(row: ModelInstance, worker_name: str, reason: str) -> None:
    """Avoid ``worker_name`` for this instance: 1 min after the first failure there, doubling up to 30 min."""
    backoff = dict(row.placement_backoff or {})
    failures = int(backoff.get(worker_name, {}).get("failures", 0)) + 1
    seconds = min(BACKOFF_FIRST * 2 ** (failures - 1), BACKOFF_MAX)
    until = utcnow() + timedelta(seconds=seconds)
    backoff[worker_name] = {"until": until.isoformat(), "failures": failures, "reason": reason[:200]}
    row.placement_backoff = backoff


async def worker_release(
    db: Database, principal: Principal, instance_id: int, expected_version: int, reason: str, failed: bool = False
) -> None:
    """The worker gives an instance back: stopped (``stopping`` → deleted) or failed (→ ``pending``).

    ``failed``: its engine kept failing on that worker; the scheduler avoids the worker for this
    instance for a while (see ``record_backoff``) and says so.
    """
    async with db.transaction() as session:
        row = await session.get(ModelInstance, instance_id)
        if row is None:
            return  # already gone: releasing twice is fine
        if principal.kind == PrincipalKind.WORKER and row.worker_id != principal.worker_id:
            raise Forbidden(f"instance {row.name} is not assigned to this worker")
        if row.version != expected_version:
            raise InvalidTransition(
                f"instance {row.name} changed since version {expected_version} (now {row.version}); read it again"
            )
        if failed and row.worker_name:
            record_backoff(row, row.worker_name, reason)
            await session.flush()
        await release_or_forget(session, row, reason)
