"""Change events, as streamed by ``GET /api/watch`` (one JSON object per line)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class EventKind(StrEnum):
    WORKERS = "workers"
    MODELS = "models"
    INSTANCES = "instances"


class EventType(StrEnum):
    ADDED = "ADDED"  # also used for the initial listing sent when a watch starts
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    SYNCED = "SYNCED"  # the initial listing is complete; what follows are live changes
    PING = "PING"  # keep-alive, so both ends notice a dead connection


class Event(BaseModel):
    kind: EventKind | None = None
    type: EventType
    id: int | None = None
    object: dict[str, Any] | None = None
