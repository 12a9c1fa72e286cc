"""Unauthenticated probes: ``/healthz`` and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST

from gpufleet import __version__
from gpufleet.db.session import Database
from gpufleet.server import metrics
from gpufleet.server.deps import database

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "role": "server", "version": __version__}


@router.get("/metrics")
async def prometheus_metrics(db: Database = Depends(database)) -> Response:
    return Response(await metrics.render(db), media_type=CONTENT_TYPE_LATEST)
