"""Unauthenticated probes: ``/healthz`` and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST

from gpufleet import __version__
from gpufleet.server import metrics
from gpufleet.server.deps import runtime
from gpufleet.server.runtime import ServerRuntime

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(server: ServerRuntime = Depends(runtime)) -> dict[str, str | bool]:
    """Alive; ``leader``: whether this server runs the scheduler and controllers (one of all replicas)."""
    return {"status": "ok", "role": "server", "version": __version__, "leader": server.leadership.leader}


@router.get("/metrics")
async def prometheus_metrics(server: ServerRuntime = Depends(runtime)) -> Response:
    """The cluster's state (read fresh from the database), then the gateway's traffic counters."""
    cluster = await metrics.render(server.db, server.leadership.leader)
    return Response(cluster + server.gateway.metrics.render(), media_type=CONTENT_TYPE_LATEST)
