"""``/api/devices``: every GPU and CPU of the cluster (admin)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from gpufleet.db.session import Database
from gpufleet.schemas.devices import DeviceDetail
from gpufleet.server.auth import ADMIN, allow
from gpufleet.server.deps import database
from gpufleet.server.principal import Principal
from gpufleet.server.services import devices as device_service

router = APIRouter(prefix="/api/devices", tags=["devices"])


@router.get("", response_model=list[DeviceDetail])
async def list_devices(
    worker_id: int | None = None, _: Principal = Depends(allow(*ADMIN)), db: Database = Depends(database)
) -> list[DeviceDetail]:
    """Every device, with gpufleet's *allocated* bytes on it and the instances holding them."""
    return await device_service.list_devices(db, worker_id)
