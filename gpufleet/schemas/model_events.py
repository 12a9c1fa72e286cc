"""What gpufleet did to a deployment on its own (``GET /api/models/{id}/events``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from gpufleet.schemas.common import PublicModel


class ModelEventKind(StrEnum):
    LOAD = "load"  # a request arrived with no instance running: one is started
    UNLOAD = "unload"  # idle for idle_timeout: an instance is stopped
    SCALE_UP = "scale_up"  # requests queued: one more instance
    SCALE_DOWN = "scale_down"  # load fell: one instance fewer
    EVICT = "evict"  # this deployment's instance made room by stopping another deployment's
    EVICTED = "evicted"  # this deployment's instance was stopped to make room for another's


class ModelEventPublic(PublicModel):
    id: int
    model_id: int
    kind: ModelEventKind
    message: str
    created_at: datetime
