"""``/api/users``: admin only."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from gpufleet.db.session import Database
from gpufleet.schemas.users import UserCreate, UserPublic, UserUpdate
from gpufleet.server.auth import ADMIN, allow
from gpufleet.server.deps import database
from gpufleet.server.principal import Principal
from gpufleet.server.services import users as user_service

router = APIRouter(prefix="/api/users", tags=["users"])
admin = allow(*ADMIN)


@router.get("", response_model=list[UserPublic])
async def list_users(_: Principal = Depends(admin), db: Database = Depends(database)) -> list[UserPublic]:
    return await user_service.list_users(db)


@router.post("", response_model=UserPublic, status_code=201)
async def create_user(body: UserCreate, _: Principal = Depends(admin), db: Database = Depends(database)) -> UserPublic:
    return await user_service.create_user(db, body)


@router.get("/{user_id}", response_model=UserPublic)
async def get_user(user_id: int, _: Principal = Depends(admin), db: Database = Depends(database)) -> UserPublic:
    return await user_service.get_user(db, user_id)


@router.patch("/{user_id}", response_model=UserPublic)
async def update_user(
    user_id: int, body: UserUpdate, principal: Principal = Depends(admin), db: Database = Depends(database)
) -> UserPublic:
    return await user_service.update_user(db, principal, user_id, body)


@router.delete("/{user_id}", status_code=204)
async def delete_user(user_id: int, principal: Principal = Depends(admin), db: Database = Depends(database)) -> None:
    await user_service.delete_user(db, principal, user_id)
