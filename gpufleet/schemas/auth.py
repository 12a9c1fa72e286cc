"""Login and the caller's own identity."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from gpufleet.schemas.common import RequestModel
from gpufleet.schemas.users import Password, Role


class LoginRequest(RequestModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"


class Me(BaseModel):
    id: int
    username: str
    role: Role
    must_change_password: bool
    authenticated_by: Literal["session", "api_key"]


class PasswordChange(RequestModel):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: Password
