"""An instance's engine log, relayed from its main worker (``GET /api/model-instances/{id}/logs``).

Whoever may read the instance may read its log (a worker credential: only instances it takes
part in). The log lives on the instance's main worker, which the server calls with that worker's
API token (``worker_calls``). Errors say what is wrong: not placed yet (409), the worker has no
log for it (404, the worker's own words), the worker cannot be reached or refuses (502).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from gpufleet.common.errors import BadGateway, Conflict, NotFound
from gpufleet.db.session import Database
from gpufleet.db.tables import Worker
from gpufleet.server.principal import Principal
from gpufleet.server.services.instances import get_instance
from gpufleet.server.worker_calls import READ_TIMEOUT, WorkerCalls, WorkerEndpoint, detail_of


async def open_log(
    db: Database, calls: WorkerCalls, principal: Principal, instance_id: int, *, tail: int, follow: bool
) -> AsyncIterator[bytes]:
    """Check access, reach the worker, and return the log's bytes as they come.

    Every error is raised before the first byte, so it reaches the client as a proper status;
    the returned iterator closes the connection to the worker when it ends or is cancelled.
    """
    instance = await get_instance(db, principal, instance_id)
    if instance.worker_id is None:
        raise Conflict(
            f"instance {instance.name} is {instance.state.value}: no logs yet, it has not been placed on a worker"
        )
    async with db.read() as session:
        row = await session.get(Worker, instance.worker_id)
        worker = WorkerEndpoint.of(row) if row is not None else None
    if worker is None:
        raise Conflict(f"instance {instance.name}: its worker (id {instance.worker_id}) no longer exists")
    response = await calls.open(
        worker,
        "GET",
        f"/instances/{instance.id}/logs",
        params={"tail": tail, "follow": follow},
        read_timeout=None if follow else READ_TIMEOUT,
    )
    if response.status_code != 200:
        try:
            await response.aread()
        finally:
            await calls.close(response)
        detail = detail_of(response)
        if response.status_code == 404:
            raise NotFound(f"{detail} (instance {instance.name} is {instance.state.value})")
        raise BadGateway(f"worker {worker.name} at {worker.address} answered HTTP {response.status_code}: {detail}")
    return calls.relay(worker, response)
