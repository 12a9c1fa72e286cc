"""Gateway usage as ``GET /api/usage`` reports it."""

from __future__ import annotations

from datetime import date, datetime
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


class UsageStep(StrEnum):
    HOUR = "hour"
    DAY = "day"


class UsagePoint(BaseModel):
    """One model's sums in one bucket (an hour or a day, starting at ``time``, UTC)."""

    time: datetime
    model_name: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class UsageSeries(BaseModel):
    """Usage over time per model: every bucket of the range in ``buckets`` (ascending), and a point
    for each (bucket, model) that had requests; a bucket without points had none."""

    step: UsageStep
    buckets: list[datetime]
    points: list[UsagePoint]
