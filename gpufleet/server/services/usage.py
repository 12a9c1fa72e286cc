"""Reading gateway usage: sums per model, user, key or day over a range of UTC days."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from gpufleet.common.errors import InvalidInput
from gpufleet.db.session import Database
from gpufleet.db.tables import ApiKey, UsageRecord, User
from gpufleet.schemas.usage import UsageGroup, UsagePoint, UsageRow, UsageSeries, UsageStep
from gpufleet.server.principal import Principal, PrincipalKind

NO_KEY = 0  # api_key_id of usage from requests made with a session token (no API key)

COLUMNS: dict[UsageGroup, tuple[Any, ...]] = {
    UsageGroup.MODEL: (UsageRecord.model_name,),
    UsageGroup.USER: (UsageRecord.user_id,),
    UsageGroup.KEY: (UsageRecord.api_key_id, UsageRecord.user_id),
    UsageGroup.DAY: (UsageRecord.day,),
}


@dataclass(frozen=True)
class Names:
    """What ids are called now: user id → username, API key id → key name."""

    users: dict[int, str]
    keys: dict[int, str]


def _model_fields(groups: Sequence[Any], names: Names) -> dict[str, Any]:
    return {"model_name": groups[0]}


def _user_fields(groups: Sequence[Any], names: Names) -> dict[str, Any]:
    return {"user_id": groups[0], "username": names.users.get(groups[0])}


def _key_fields(groups: Sequence[Any], names: Names) -> dict[str, Any]:
    key_id, user_id = groups
    name = "(login session)" if key_id == NO_KEY else names.keys.get(key_id, f"(deleted key {key_id})")
    return {"api_key_id": key_id, "api_key_name": name, "user_id": user_id, "username": names.users.get(user_id)}


def _day_fields(groups: Sequence[Any], names: Names) -> dict[str, Any]:
    return {"day": date.fromisoformat(groups[0])}


# A row's own fields from its group's column values (in ``COLUMNS`` order).
FIELDS: dict[UsageGroup, Callable[[Sequence[Any], Names], dict[str, Any]]] = {
    UsageGroup.MODEL: _model_fields,
    UsageGroup.USER: _user_fields,
    UsageGroup.KEY: _key_fields,
    UsageGroup.DAY: _day_fields,
}


async def usage(
    db: Database, principal: Principal, group_by: UsageGroup, since: date | None, until: date | None
) -> list[UsageRow]:
    """Admins see everyone's usage; a user sees their own."""
    if since is not None and until is not None and since > until:
        raise InvalidInput(f"from ({since}) is after to ({until})", field="from")
    columns = COLUMNS[group_by]
    requests = func.sum(UsageRecord.requests)
    prompt = func.sum(UsageRecord.prompt_tokens)
    completion = func.sum(UsageRecord.completion_tokens)
    query = select(*columns, requests, prompt, completion).group_by(*columns).order_by(*columns)
    if since is not None:
        query = query.where(UsageRecord.day >= since.isoformat())
    if until is not None:
        query = query.where(UsageRecord.day <= until.isoformat())
    if principal.kind != PrincipalKind.ADMIN:
        query = query.where(UsageRecord.user_id == principal.user_id)
    async with db.read() as session:
        rows = (await session.execute(query)).all()
        users = dict((await session.execute(select(User.id, User.username))).all())
        keys = dict((await session.execute(select(ApiKey.id, ApiKey.name))).all())
    names, fields_of = Names(users, keys), FIELDS[group_by]
    result = []
    for row in rows:
        *groups, n, p, c = row
        fields = fields_of(groups, names)
        result.append(
            UsageRow(**fields, requests=n, prompt_tokens=p, completion_tokens=c, total_tokens=int(p) + int(c))
        )
    return result


MAX_BUCKETS = 24 * 92  # an hourly series of a quarter at most


def _buckets(since: date, until: date, step: UsageStep) -> list[datetime]:
    first = datetime(since.year, since.month, since.day, tzinfo=UTC)
    end = datetime(until.year, until.month, until.day, tzinfo=UTC) + timedelta(days=1)
    width = timedelta(hours=1) if step == UsageStep.HOUR else timedelta(days=1)
    count = int((end - first) / width)
    if count > MAX_BUCKETS:
        raise InvalidInput(f"{count} {step.value}s is too long a series (at most {MAX_BUCKETS}): narrow from/to")
    return [first + width * i for i in range(count)]


async def series(db: Database, principal: Principal, since: date, until: date, step: UsageStep) -> UsageSeries:
    """Requests and tokens per model per hour or day of ``since``..``until`` (UTC days, inclusive)."""
    if since > until:
        raise InvalidInput(f"from ({since}) is after to ({until})", field="from")
    buckets = _buckets(since, until, step)
    columns: tuple[Any, ...] = (UsageRecord.day, UsageRecord.model_name)
    if step == UsageStep.HOUR:
        columns = (UsageRecord.day, UsageRecord.hour, UsageRecord.model_name)
    query = (
        select(
            *columns,
            func.sum(UsageRecord.requests),
            func.sum(UsageRecord.prompt_tokens),
            func.sum(UsageRecord.completion_tokens),
        )
        .where(UsageRecord.day >= since.isoformat(), UsageRecord.day <= until.isoformat())
        .group_by(*columns)
        .order_by(*columns)
    )
    if principal.kind != PrincipalKind.ADMIN:
        query = query.where(UsageRecord.user_id == principal.user_id)
    async with db.read() as session:
        rows = (await session.execute(query)).all()
    points = []
    for row in rows:
        values = tuple(row)
        day, hour, model = values[:3] if step == UsageStep.HOUR else (values[0], 0, values[1])
        n, p, c = values[-3:]
        start = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(hours=int(hour))
        points.append(
            UsagePoint(
                time=start,
                model_name=model,
                requests=n,
                prompt_tokens=p,
                completion_tokens=c,
                total_tokens=int(p) + int(c),
            )
        )
    return UsageSeries(step=step, buckets=buckets, points=points)
