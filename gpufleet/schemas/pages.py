"""One page of a list: what ``GET /api/<things>?limit=N`` answers (without ``limit``: the bare list)."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int  # rows matching the filters, over all pages
