"""The RPC parts of distributed instances: what subordinate workers report, and what losing one means.

A distributed instance runs llama-server on its main worker with ``--rpc`` endpoints served by
ggml-rpc-servers on its subordinate workers. Each subordinate reports its server here (port and
pid, or why it has none); the entry in ``subordinates`` records it with the address the main
worker should connect to (the subordinate worker's advertised ip). The main worker starts
llama-server once every part is ready, and restarts it when a part's RPC server changed.

Losing a subordinate worker (no heartbeats, or shut down) makes the instance ``unreachable`` with
the reason, and marks its part; the part is ready again when the worker, back, reports its RPC
server anew; the main worker then reports the instance ``running`` again.

Every change goes through ``lifecycle.transition`` (same state, new ``subordinates``), so the
version bumps and watchers see it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gpufleet.common.errors import Forbidden, InvalidTransition, NotFound
from gpufleet.db.session import Database
from gpufleet.db.tables import ModelInstance, Worker
from gpufleet.schemas.instances import InstancePublic, RpcServerReport
from gpufleet.schemas.states import InstanceState
from gpufleet.server import lifecycle
from gpufleet.server.principal import Principal
from gpufleet.server.services import instances as instance_service

ATTEMPTS = 5  # read-modify-write retries when another writer moved the instance meanwhile
PLACED = (InstanceState.SCHEDULED, InstanceState.DOWNLOADING, InstanceState.STARTING, InstanceState.RUNNING)


def _with_part(parts: list[dict[str, Any]], worker_id: int, **changes: Any) -> list[dict[str, Any]]:
    return [{**part, **changes} if part.get("worker_id") == worker_id else part for part in parts]


async def report_rpc_server(
    db: Database, principal: Principal, instance_id: int, body: RpcServerReport
) -> InstancePublic:
    """A subordinate worker's RPC server for one instance is up (port, pid) or is not (message)."""
    worker_id = principal.worker_id
    for _ in range(ATTEMPTS):
        async with db.transaction() as session:
            row = await session.get(ModelInstance, instance_id)
            if row is None:
                raise NotFound(f"instance {instance_id} does not exist")
            if worker_id is None or not any(p.get("worker_id") == worker_id for p in row.subordinates):
                raise Forbidden(f"this worker lends no devices to instance {row.name}")
            worker = await session.get(Worker, worker_id)
            assert worker is not None
            parts = _with_part(
                row.subordinates,
                worker_id,
                rpc_port=body.rpc_port,
                rpc_pid=body.rpc_pid,
                rpc_host=worker.ip if body.rpc_port is not None else None,
                message=body.message,
            )
            if parts == row.subordinates:
                return instance_service.to_public(row)
            try:
                updated = await lifecycle.transition(
                    session,
                    instance_id,
                    expected_version=row.version,
                    to=InstanceState(row.state),
                    message=row.state_message,
                    subordinates=parts,
                )
            except InvalidTransition:
                continue  # moved meanwhile: read it again
            return instance_service.publish(session, updated)
    raise InvalidTransition(f"instance {instance_id} kept changing; report the RPC server again")


async def lose_parts(session: AsyncSession, worker: Worker) -> None:
    """``worker`` is gone: the distributed instances it lends devices to become ``unreachable``."""
    rows = (
        (
            await session.execute(
                select(ModelInstance).where(
                    ModelInstance.state.in_([s.value for s in (*PLACED, InstanceState.UNREACHABLE)]),
                    ModelInstance.worker_id != worker.id,
                )
            )
        )
        .scalars()
        .all()
    )
    reason = f"worker {worker.name} is {worker.state}: {worker.state_message}"
    for row in rows:
        if not any(p.get("worker_id") == worker.id for p in row.subordinates):
            continue
        parts = _with_part(row.subordinates, worker.id, message=reason)
        await instance_service.transition_and_publish(
            session,
            row,
            InstanceState.UNREACHABLE,
            f"RPC subordinate {worker.name} lost: {reason}",
            subordinates=parts,
        )
