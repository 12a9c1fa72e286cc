"""The query parameters every list endpoint takes, and how they shape a query.

``?limit=&offset=`` page (without ``limit`` a list endpoint answers every row as a bare JSON list,
as workers and older clients expect; with it, ``{"items": [...], "total": N}``), ``?state=``
filters by state, ``?label=k=v`` (repeatable) by labels, ``?q=`` searches names (case-insensitive
substring). Filters are SQL, so a page of 10,000 workers reads one page of rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gpufleet.common.errors import InvalidInput
from gpufleet.common.labels import parse_labels
from gpufleet.schemas.pages import Page

T = TypeVar("T")
Q = TypeVar("Q", bound="Select[*tuple[Any, ...]]")  # any select, its row type kept
MAX_LIMIT = 1000


@dataclass(frozen=True)
class ListParams:
    limit: int | None = None
    offset: int = 0
    state: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    q: str | None = None

    def filtered(self, query: Q, *, state: Any = None, labels: Any = None, name: Any = None) -> Q:
        """``query`` with the filters applied to the given columns (a filter without its column is refused)."""
        for asked, column, what in ((self.state, state, "state"), (self.q, name, "q")):
            if asked is not None and column is None:
                raise InvalidInput(f"this list cannot be filtered by {what}", field=what)
        if self.state is not None:
            query = query.where(state == self.state)
        if self.q:
            query = query.where(func.lower(name).contains(self.q.lower(), autoescape=True))
        if self.labels:
            if labels is None:
                raise InvalidInput("this list cannot be filtered by label", field="label")
            for key, value in self.labels.items():
                query = query.where(labels[key].as_string() == value)
        return query

    def paged(self, query: Q) -> Q:
        return query if self.limit is None else query.limit(self.limit).offset(self.offset)


EVERY_ROW = ListParams()


async def count(session: AsyncSession, query: Select[*tuple[Any, ...]]) -> int:
    """Rows ``query`` matches (its filters; without paging or order)."""
    return int((await session.execute(select(func.count()).select_from(query.order_by(None).subquery()))).scalar_one())


def answer(params: ListParams, items: list[T], total: int | None) -> list[T] | Page[T]:
    return items if params.limit is None else Page[T](items=items, total=total if total is not None else len(items))


async def list_params(  # async: FastAPI runs a plain function in its thread pool
    limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT, description="page size; without it, every row")] = None,
    offset: Annotated[int, Query(ge=0, description="rows to skip (with limit)")] = 0,
    state: Annotated[str | None, Query(description="only rows in this state")] = None,
    label: Annotated[list[str] | None, Query(description="k=v, repeatable: only rows with these labels")] = None,
    q: Annotated[str | None, Query(max_length=200, description="name contains (case-insensitive)")] = None,
) -> ListParams:
    try:
        labels = parse_labels(",".join(label or []))
    except ValueError as exc:
        raise InvalidInput(str(exc), field="label") from exc
    return ListParams(limit=limit, offset=offset, state=state, labels=labels, q=q)


Listing = Annotated[ListParams, Depends(list_params)]
