"""The worker's own HTTP server (``--worker-port``).

Open: ``/healthz`` (the server's probe) and ``/metrics``. Private, for the server only (bearer
token, see ``api_auth``): ``/instances/{id}/logs``; the gateway's inference proxy joins them later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import Depends, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from gpufleet import __version__
from gpufleet.common.fastapi_app import quiet_fastapi
from gpufleet.common.resources import device_id, held_by_instance, total_by_device
from gpufleet.schemas.instances import InstancePublic
from gpufleet.schemas.workers import WorkerStatus
from gpufleet.worker.api_auth import require_server
from gpufleet.worker.log_route import logs_router


def render_metrics(
    worker_name: str, state: str | None, status: WorkerStatus | None, instances: list[InstancePublic]
) -> bytes:
    registry = CollectorRegistry()
    workers = Gauge(
        "gpufleet_workers", "This worker, by the state the server last reported", ["state"], registry=registry
    )
    if state:
        workers.labels(state).set(1)
    by_state = Gauge(
        "gpufleet_instances", "Instances this worker takes part in, by state", ["state"], registry=registry
    )
    for instance in instances:
        by_state.labels(instance.state.value).inc()
    memory = Gauge(
        "gpufleet_device_memory_bytes",
        "Device memory: total, used (by anyone), claimed by gpufleet",
        ["worker", "device", "kind"],
        registry=registry,
    )
    claimed = total_by_device(
        held
        for i in instances
        for held in held_by_instance(i.worker_name, i.claim, [s.model_dump() for s in i.subordinates])
    )
    for device in status.devices if status else []:
        identifier = device_id(worker_name, device.type.value, device.index)
        memory.labels(worker_name, identifier, "total").set(device.memory_total)
        memory.labels(worker_name, identifier, "used").set(device.memory_used)
        memory.labels(worker_name, identifier, "claimed").set(claimed.get(identifier, 0))
    return generate_latest(registry)


def create_worker_app(
    metrics: Callable[[], Awaitable[bytes]],
    name: Callable[[], str],
    *,
    api_token: str,
    log_path: Callable[[int], Path | None],
) -> FastAPI:
    """``metrics``: the ``/metrics`` body (it scrapes the engines, so it is awaited); ``api_token``: what
    the server must present on private routes; ``log_path``: see ``logs_router``."""
    app = quiet_fastapi(title="gpufleet worker", version=__version__, docs_url=None, redoc_url=None)
    app.include_router(logs_router(log_path, name), dependencies=[Depends(require_server(api_token))])

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "role": "worker", "name": name(), "version": __version__}

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(await metrics(), media_type=CONTENT_TYPE_LATEST)

    return app
