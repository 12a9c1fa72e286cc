"""``/api/devices``: every GPU and CPU of the cluster (admin)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from gpufleet.db.session import Database
from gpufleet.schemas.devices import DeviceDetail
from gpufleet.schemas.pages import Page
from gpufleet.server.auth import ADMIN, allow
from gpufleet.server.deps import database
from gpufleet.server.listing import Listing, answer
from gpufleet.server.principal import Principal
from gpufleet.server.services import devices as device_service

router = APIRouter(prefix="/api/devices", tags=["devices"])


@router.get("", response_model=list[DeviceDetail] | Page[DeviceDetail])
async def list_devices(
    params: Listing,
    worker_id: int | None = None,
    _: Principal = Depends(allow(*ADMIN)),
    db: Database = Depends(database),
) -> list[DeviceDetail] | Page[DeviceDetail]:
    """Every device, with gpufleet's *allocated* bytes on it and the instances holding them; with
    ``limit``, one page (``state`` and ``label`` of its worker, ``q`` on its id or name)."""
    items, total = await device_service.list_devices(db, worker_id, params)
    return answer(params, items, total)
