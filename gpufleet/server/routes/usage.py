"""``GET /api/usage``: gateway requests and tokens, grouped by model, user, key or day;
``GET /api/usage/series``: the same per model over time, per hour or per day."""

from __future__ import annotations

from datetime import date, timedelta

from fastapi import APIRouter, Depends, Query

from gpufleet.common.clock import utcnow
from gpufleet.schemas.usage import UsageGroup, UsageRow, UsageSeries, UsageStep
from gpufleet.server.auth import USERS, allow
from gpufleet.server.deps import runtime
from gpufleet.server.principal import Principal
from gpufleet.server.runtime import ServerRuntime
from gpufleet.server.services import usage as usage_service

router = APIRouter(prefix="/api/usage", tags=["usage"])


@router.get("", response_model=list[UsageRow])
async def get_usage(
    group_by: UsageGroup = Query(UsageGroup.MODEL, description="model, user, key or day"),
    since: date | None = Query(None, alias="from", description="first UTC day, YYYY-MM-DD (inclusive)"),
    until: date | None = Query(None, alias="to", description="last UTC day, YYYY-MM-DD (inclusive)"),
    principal: Principal = Depends(allow(*USERS)),
    server: ServerRuntime = Depends(runtime),
) -> list[UsageRow]:
    """Admins see everyone's usage, users their own. Includes requests answered a moment ago."""
    await server.gateway.usage.flush()
    return await usage_service.usage(server.db, principal, group_by, since, until)


@router.get("/series", response_model=UsageSeries)
async def get_usage_series(
    step: UsageStep = Query(UsageStep.DAY, description="hour or day"),
    since: date | None = Query(None, alias="from", description="first UTC day [default: 6 days before to]"),
    until: date | None = Query(None, alias="to", description="last UTC day, inclusive [default: today]"),
    principal: Principal = Depends(allow(*USERS)),
    server: ServerRuntime = Depends(runtime),
) -> UsageSeries:
    """Requests and tokens per model per hour or day (admins: everyone's; users: their own)."""
    await server.gateway.usage.flush()
    last = until or utcnow().date()
    return await usage_service.series(server.db, principal, since or last - timedelta(days=6), last, step)
