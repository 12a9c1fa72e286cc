"""Gateway usage as ``GET /api/usage`` reports it."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel


class UsageGroup(StrEnum):
    MODEL = "model"
    USER = "user"
    KEY = "key"
    DAY = "day"


class UsageRow(BaseModel):
    """Sums over the requested days for one group. Only the fields of the grouping are set:
    ``model_name`` (model), ``user_id``/``username`` (user), ``api_key_id``/``api_key_name``
    (key; id 0 = requests made with a login session, not a key), ``day`` (day)."""

    model_name: str | None = None
    user_id: int | None = None
    username: str | None = None
    api_key_id: int | None = None
    api_key_name: str | None = None
    day: date | None = None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
