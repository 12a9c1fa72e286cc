"""``GET /api/usage``: gateway requests and tokens, grouped by model, user, key or day."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Query

from gpufleet.schemas.usage import UsageGroup, UsageRow
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
