"""Users and their roles."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field

from gpufleet.schemas.common import PublicModel, RequestModel

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"


def _username(value: str) -> str:
    if not USERNAME.match(value):
        raise ValueError("must be 1-64 letters, digits and . _ @ -, starting with a letter or digit")
    return value


Password = Annotated[str, Field(min_length=8, max_length=256)]


class UserCreate(RequestModel):
    username: Annotated[str, AfterValidator(_username)]
    password: Password
    role: Role = Role.USER


class UserUpdate(RequestModel):
    password: Password | None = None
    role: Role | None = None


class UserPublic(PublicModel):
    id: int
    username: str
    role: Role
    must_change_password: bool
    created_at: datetime
    updated_at: datetime
