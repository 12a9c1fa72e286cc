"""``/api/api-keys``: each user manages their own keys; an admin may list and delete everyone's."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from gpufleet.db.session import Database
from gpufleet.schemas.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic, ApiKeyUpdate
from gpufleet.server.auth import USERS, allow
from gpufleet.server.deps import database
from gpufleet.server.principal import Principal
from gpufleet.server.services import api_keys as key_service

router = APIRouter(prefix="/api/api-keys", tags=["api-keys"])
users = allow(*USERS)


@router.get("", response_model=list[ApiKeyPublic])
async def list_keys(
    all: bool = False, principal: Principal = Depends(users), db: Database = Depends(database)
) -> list[ApiKeyPublic]:
    return await key_service.list_api_keys(db, principal, all_users=all)


@router.post("", response_model=ApiKeyCreated, status_code=201)
async def create_key(
    body: ApiKeyCreate, principal: Principal = Depends(users), db: Database = Depends(database)
) -> ApiKeyCreated:
    return await key_service.create_api_key(db, principal, body)


@router.patch("/{key_id}", response_model=ApiKeyPublic)
async def update_key(
    key_id: int, body: ApiKeyUpdate, principal: Principal = Depends(users), db: Database = Depends(database)
) -> ApiKeyPublic:
    return await key_service.update_api_key(db, principal, key_id, body)


@router.delete("/{key_id}", status_code=204)
async def delete_key(key_id: int, principal: Principal = Depends(users), db: Database = Depends(database)) -> None:
    await key_service.delete_api_key(db, principal, key_id)
