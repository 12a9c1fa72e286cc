"""Model files cached on workers: what a worker reports about a download, and the public view of it.

A worker reports one ``ModelFileReport`` per source identity (``source_key``) as its download
starts, advances (at most once a second) and ends; the server keeps one row per (worker,
source_key), so reports are idempotent upserts.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from gpufleet.schemas.common import PublicModel, RequestModel
from gpufleet.schemas.models import ModelSource


class ModelFileState(StrEnum):
    DOWNLOADING = "downloading"
    READY = "ready"
    ERROR = "error"


class ModelFileReport(RequestModel):
    """Sent by a worker about its own cache (the worker comes from its credential, never the body)."""

    source: ModelSource
    source_key: str = Field(min_length=1, max_length=1024)
    state: ModelFileState
    state_message: str | None = Field(None, max_length=8000)
    download_progress: float | None = Field(None, ge=0, le=100)
    size: int | None = Field(None, ge=0)  # bytes, all files together
    resolved_paths: list[str] = Field(default_factory=list, max_length=1000)  # on the worker; the engine gets [0]


class ModelFilePublic(PublicModel):
    id: int
    worker_id: int
    worker_name: str
    source: ModelSource
    source_key: str
    state: ModelFileState
    state_message: str | None
    download_progress: float | None
    size: int | None
    resolved_paths: list[str]
    created_at: datetime
    updated_at: datetime
