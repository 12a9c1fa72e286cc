"""``POST /api/models/preview``: where a deployment would go, without creating anything."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class WorkerReason(BaseModel):
    worker_name: str
    reason: str


class PreviewPlacement(BaseModel):
    mode: str  # single_gpu | multi_gpu | distributed | partial_offload | cpu
    worker_name: str
    device_ids: list[str]
    claim: dict[str, Any]  # ram, vram {device id: bytes}, offload_layers, total_layers, tensor_split
    subordinates: list[dict[str, Any]] = Field(default_factory=list)  # worker_name, device_ids, claim


class PreviewResult(BaseModel):
    schedulable: bool  # every replica placed
    placements: list[PreviewPlacement]  # one per replica placed, in order
    message: str
    reasons: list[WorkerReason]  # why the first replica that did not fit fits nowhere, per worker
