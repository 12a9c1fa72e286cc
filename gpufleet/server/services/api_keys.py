"""API keys: created by their owner, shown once, listed without the secret, deleted at once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gpufleet.common.errors import Conflict, NotFound
from gpufleet.db.session import Database, record_credentials_change
from gpufleet.db.tables import ApiKey
from gpufleet.schemas.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic, ApiKeyUpdate
from gpufleet.server import secrets
from gpufleet.server.principal import Principal, PrincipalKind


def to_public(row: ApiKey) -> ApiKeyPublic:
    return ApiKeyPublic(
        id=row.id,
        name=row.name,
        prefix=f"{secrets.API_KEY_PREFIX}{row.key_id}",
        user_id=row.user_id,
        username=row.user.username,
        expires_at=row.expires_at,
        allowed_models=row.allowed_models,
        requests_per_minute=row.requests_per_minute,
        tokens_per_day=row.tokens_per_day,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


async def create_api_key(db: Database, owner: Principal, body: ApiKeyCreate) -> ApiKeyCreated:
    assert owner.user_id is not None
    key, key_id, secret = secrets.new_api_key()
    try:
        async with db.transaction() as session:
            row = ApiKey(
                name=body.name,
                key_id=key_id,
                secret_hash=secrets.sha256(secret),
                user_id=owner.user_id,
                expires_at=body.expires_at,
                allowed_models=body.allowed_models,
                requests_per_minute=body.requests_per_minute,
                tokens_per_day=body.tokens_per_day,
            )
            session.add(row)
            await session.flush()
            await session.refresh(row, ["user"])
            public = to_public(row)
    except IntegrityError as exc:
        raise Conflict(f"you already have an API key named {body.name!r}", field="name") from exc
    return ApiKeyCreated(**public.model_dump(), key=key)


async def list_api_keys(db: Database, principal: Principal, *, all_users: bool) -> list[ApiKeyPublic]:
    query = select(ApiKey).order_by(ApiKey.id)
    if not (all_users and principal.kind == PrincipalKind.ADMIN):
        query = query.where(ApiKey.user_id == principal.user_id)
    async with db.read() as session:
        rows = (await session.execute(query)).scalars().all()
    return [to_public(row) for row in rows]


async def update_api_key(db: Database, principal: Principal, key_id: int, body: ApiKeyUpdate) -> ApiKeyPublic:
    """Change a key's expiry, models or limits; takes effect on the next request (cached keys are dropped)."""
    async with db.transaction() as session:
        row = await session.get(ApiKey, key_id)
        if row is None or (principal.kind != PrincipalKind.ADMIN and row.user_id != principal.user_id):
            raise NotFound(f"API key {key_id} does not exist")
        for name in body.model_fields_set:
            setattr(row, name, getattr(body, name))
        await session.flush()
        await session.refresh(row, ["user"])
        record_credentials_change(session)
        return to_public(row)


async def delete_api_key(db: Database, principal: Principal, key_id: int) -> None:
    async with db.transaction() as session:
        row = await session.get(ApiKey, key_id)
        if row is None or (principal.kind != PrincipalKind.ADMIN and row.user_id != principal.user_id):
            raise NotFound(f"API key {key_id} does not exist")
        await session.delete(row)
        record_credentials_change(session)
