"""``/api/workers``: registration and heartbeats (workers), listing and changes (admins)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from gpufleet.common.errors import Forbidden
from gpufleet.db.session import Database
from gpufleet.schemas.pages import Page
from gpufleet.schemas.workers import (
    HeartbeatAck,
    WorkerHeartbeat,
    WorkerJoin,
    WorkerPublic,
    WorkerRegister,
    WorkerRegistered,
    WorkerUpdate,
)
from gpufleet.server.auth import ADMIN, ADMIN_OR_WORKER, REGISTRANT, WORKER, allow
from gpufleet.server.deps import database, runtime
from gpufleet.server.listing import Listing, answer
from gpufleet.server.principal import Principal
from gpufleet.server.runtime import ServerRuntime
from gpufleet.server.services import workers as worker_service

router = APIRouter(prefix="/api/workers", tags=["workers"])
admin = allow(*ADMIN)


@router.post("/register", response_model=WorkerRegistered)
async def register(
    body: WorkerRegister,
    principal: Principal = Depends(allow(*REGISTRANT)),
    server: ServerRuntime = Depends(runtime),
) -> WorkerRegistered:
    result = await worker_service.register(server.db, principal, body)
    server.probes.probe_now(result.worker.id)
    return result


@router.post("/{worker_id}/heartbeat", response_model=HeartbeatAck)
async def heartbeat(
    worker_id: int,
    body: WorkerHeartbeat,
    principal: Principal = Depends(allow(*WORKER)),
    server: ServerRuntime = Depends(runtime),
) -> HeartbeatAck:
    """A plain heartbeat of a live worker is answered from memory (``server.heartbeats``); a status
    change, a ``leaving`` one, or one from a worker not known to be live goes to the database."""
    if principal.worker_id != worker_id:
        raise Forbidden("a worker may only send its own heartbeat")
    if body.status is None and not body.leaving:
        ack = server.heartbeats.beat(worker_id)
        if ack is not None:
            return ack
    public = await worker_service.heartbeat(server.db, worker_id, body)
    ack = HeartbeatAck(id=public.id, state=public.state, state_message=public.state_message)
    server.heartbeats.known(ack)
    return ack


@router.get("", response_model=list[WorkerPublic] | Page[WorkerPublic])
async def list_workers(
    params: Listing, _: Principal = Depends(admin), db: Database = Depends(database)
) -> list[WorkerPublic] | Page[WorkerPublic]:
    """Every worker; with ``limit``, one page of them (``state``, ``label=k=v``, ``q`` filter)."""
    items, total = await worker_service.list_workers(db, params)
    return answer(params, items, total)


@router.get("/join", response_model=WorkerJoin)
async def join_command(
    request: Request, _: Principal = Depends(admin), server: ServerRuntime = Depends(runtime)
) -> WorkerJoin:
    """How another machine joins this cluster: the registration token and the command to run there.

    The command hands the token over in the environment, not as ``--token``: a flag's value is
    readable by every user of that machine in ``ps``."""
    url = str(request.base_url).rstrip("/")
    token = server.cluster_token
    return WorkerJoin(server_url=url, token=token, command=f"GPUFLEET_TOKEN={token} gpufleet start --server-url {url}")


@router.get("/{worker_id}", response_model=WorkerPublic)
async def get_worker(
    worker_id: int, principal: Principal = Depends(allow(*ADMIN_OR_WORKER)), db: Database = Depends(database)
) -> WorkerPublic:
    return await worker_service.get_worker(db, principal, worker_id)


@router.patch("/{worker_id}", response_model=WorkerPublic)
async def update_worker(
    worker_id: int, body: WorkerUpdate, _: Principal = Depends(admin), db: Database = Depends(database)
) -> WorkerPublic:
    return await worker_service.update_worker(db, worker_id, body)


@router.delete("/{worker_id}", status_code=204)
async def delete_worker(worker_id: int, _: Principal = Depends(admin), db: Database = Depends(database)) -> None:
    await worker_service.delete_worker(db, worker_id)
