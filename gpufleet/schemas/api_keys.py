"""API keys: shown once at creation, stored hashed."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, field_validator

from gpufleet.common.clock import utcnow
from gpufleet.schemas.common import PublicModel, RequestModel


def future_expiry(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("must include a timezone, e.g. 2027-01-01T00:00:00Z")
    if value <= utcnow():
        raise ValueError("must be in the future")
    return value


class ApiKeyCreate(RequestModel):
    name: str = Field(min_length=1, max_length=64)
    expires_at: datetime | None = None
    allowed_models: list[str] | None = Field(None, min_length=1)  # None = every model
    requests_per_minute: int | None = Field(None, ge=1, le=1_000_000)  # None = unlimited
    tokens_per_day: int | None = Field(None, ge=1)  # prompt + completion tokens per UTC day; None = unlimited

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        return future_expiry(value)


class ApiKeyUpdate(RequestModel):
    """Changes to a key's scope and limits; a field sent as null removes that restriction."""

    expires_at: datetime | None = None
    allowed_models: list[str] | None = Field(None, min_length=1)
    requests_per_minute: int | None = Field(None, ge=1, le=1_000_000)
    tokens_per_day: int | None = Field(None, ge=1)

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        return future_expiry(value)


class ApiKeyPublic(PublicModel):
    id: int
    name: str
    prefix: str  # the first characters of the key, to recognise it in lists
    user_id: int
    username: str
    expires_at: datetime | None
    allowed_models: list[str] | None
    requests_per_minute: int | None
    tokens_per_day: int | None
    created_at: datetime
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str  # the secret: returned by create only, never again
