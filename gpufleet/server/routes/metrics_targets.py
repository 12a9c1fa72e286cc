"""``GET /api/metrics/targets``: what Prometheus scrapes, in its HTTP service-discovery format.

Who may read it: admins (session or API key) and any valid API key, a user's too, since that is
what a Prometheus server holds (``authorization: credentials_file`` in ``deploy/prometheus.yml``).
A user's browser session gets 403 (worker addresses are operator data), anonymous callers 401.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from gpufleet.common.errors import Forbidden
from gpufleet.db.session import Database
from gpufleet.schemas.metrics_targets import MetricsTargetGroup
from gpufleet.server.auth import USERS, allow
from gpufleet.server.deps import database
from gpufleet.server.principal import Principal, PrincipalKind
from gpufleet.server.services.metrics_targets import metrics_targets

router = APIRouter(prefix="/api/metrics", tags=["metrics"])


async def admin_or_api_key(request: Request, principal: Annotated[Principal, Depends(allow(*USERS))]) -> Principal:
    if principal.kind != PrincipalKind.ADMIN and principal.authenticated_by != "api_key":
        raise Forbidden(f"{request.url.path} is for admins and API keys (a Prometheus server's credential)")
    return principal


MonitorDep = Annotated[Principal, Depends(admin_or_api_key)]


@router.get("/targets", response_model=list[MetricsTargetGroup])
async def get_metrics_targets(
    request: Request, _: MonitorDep, db: Annotated[Database, Depends(database)]
) -> list[MetricsTargetGroup]:
    """This server and every worker, each ``{"targets": ["host:port"], "labels": {...}}`` (``http_sd_configs``)."""
    return await metrics_targets(db, request.base_url.netloc, request.base_url.scheme)
