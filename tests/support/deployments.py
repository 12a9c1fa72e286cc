"""``ModelPublic`` values for worker-side tests (what the worker reads from ``GET /api/models/{id}``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gpufleet.schemas.models import ModelPublic


def deployment(source: str, name: str = "m", **fields: Any) -> ModelPublic:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "id": 1,
        "name": name,
        "source": source,
        "huggingface_repo_id": None,
        "huggingface_filename": None,
        "modelscope_model_id": None,
        "modelscope_file_path": None,
        "ollama_library_model_name": None,
        "local_path": None,
        "backend": None,
        "backend_parameters": [],
        "replicas": 1,
        "placement_strategy": "spread",
        "cpu_offloading": True,
        "distributed_inference_across_workers": True,
        "worker_selector": {},
        "gpu_selector": None,
        "ctx_size": None,
        "description": None,
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    return ModelPublic.model_validate(values)
