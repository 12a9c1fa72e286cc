"""Model deployments: the spec a person writes, and the public view of it.

``ModelSpec`` is validated as a whole, so an update is checked by merging it
onto the stored spec and validating the result: a PATCH can never produce a
deployment that a POST would have refused.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, Field, model_validator

from gpufleet.schemas.common import Labels, PublicModel, RequestModel

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")
DEFAULT_MAX_QUEUE = 100  # requests waiting per deployment before 429
DEFAULT_QUEUE_TIMEOUT = 120  # seconds a request may wait for a free slot or a load before 503
DEVICE_ID = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?:(cuda|rocm|metal|cpu):\d+$")


class ModelSource(StrEnum):
    HUGGINGFACE = "huggingface"
    MODELSCOPE = "modelscope"
    OLLAMA_LIBRARY = "ollama_library"
    LOCAL_PATH = "local_path"


class Backend(StrEnum):
    LLAMA_CPP = "llama.cpp"
    VLLM = "vllm"


class PlacementStrategy(StrEnum):
    SPREAD = "spread"
    BINPACK = "binpack"


# The source-specific fields: which one each source requires, and which it may use.
SOURCE_FIELDS: dict[ModelSource, tuple[tuple[str, ...], tuple[str, ...]]] = {
    ModelSource.HUGGINGFACE: (("huggingface_repo_id",), ("huggingface_repo_id", "huggingface_filename")),
    ModelSource.MODELSCOPE: (("modelscope_model_id",), ("modelscope_model_id", "modelscope_file_path")),
    ModelSource.OLLAMA_LIBRARY: (("ollama_library_model_name",), ("ollama_library_model_name",)),
    ModelSource.LOCAL_PATH: (("local_path",), ("local_path",)),
}
ALL_SOURCE_FIELDS = sorted({f for _, allowed in SOURCE_FIELDS.values() for f in allowed})


def _model_name(value: str) -> str:
    if not MODEL_NAME.match(value):
        raise ValueError("must be 1-128 characters: letters, digits and . _ : / @ + -, starting with a letter or digit")
    return value


def _device_ids(value: list[str]) -> list[str]:
    for device in value:
        if not DEVICE_ID.match(device):
            raise ValueError(f"{device!r} is not a device id of the form <worker-name>:<cuda|rocm|metal|cpu>:<index>")
    if len(set(value)) != len(value):
        raise ValueError("lists a device more than once")
    return value


class GpuSelector(RequestModel):
    device_ids: Annotated[list[str], Field(min_length=1), AfterValidator(_device_ids)]


class ModelSpec(RequestModel):
    """Everything a deployment is made of. Shared by create, update (merged) and preview."""

    name: Annotated[str, AfterValidator(_model_name)]
    source: ModelSource
    huggingface_repo_id: str | None = Field(None, min_length=1, max_length=256)
    huggingface_filename: str | None = Field(None, min_length=1, max_length=512)
    modelscope_model_id: str | None = Field(None, min_length=1, max_length=256)
    modelscope_file_path: str | None = Field(None, min_length=1, max_length=512)
    ollama_library_model_name: str | None = Field(None, min_length=1, max_length=256)
    local_path: str | None = Field(None, min_length=1, max_length=4096)
    backend: Backend | None = None
    # Checked by the engine's description (``engines``), which knows its flags.
    backend_parameters: list[str] = Field(default_factory=list)
    replicas: int = Field(1, ge=0, le=1000)
    placement_strategy: PlacementStrategy = PlacementStrategy.SPREAD
    cpu_offloading: bool = False
    distributed_inference_across_workers: bool = True
    worker_selector: Labels = Field(default_factory=dict)
    gpu_selector: GpuSelector | None = None
    ctx_size: int | None = Field(None, ge=1, le=10_000_000)
    description: str | None = Field(None, max_length=4000)
    # On demand and autoscaling (docs/on-demand.md). With both bounds set, ``replicas`` is the current
    # target, moved between them by load, idleness and eviction; without them it is fixed as before.
    min_replicas: int | None = Field(None, ge=0, le=1000)
    max_replicas: int | None = Field(None, ge=0, le=1000)
    idle_timeout: int | None = Field(None, ge=1, le=30 * 24 * 3600)  # seconds; None: never unloaded when idle
    priority: int = Field(0, ge=-1000, le=1000)
    max_concurrent_requests: int | None = Field(None, ge=1, le=10_000)  # per instance; None: the engine's slots
    max_queue: int = Field(DEFAULT_MAX_QUEUE, ge=0, le=100_000)
    queue_timeout: int = Field(DEFAULT_QUEUE_TIMEOUT, ge=1, le=24 * 3600)  # seconds

    @model_validator(mode="after")
    def _replica_bounds(self) -> ModelSpec:
        """Both bounds or neither; 0 ≤ min ≤ max; ``replicas`` inside them (left out: ``min_replicas``)."""
        low, high = self.min_replicas, self.max_replicas
        if (low is None) != (high is None):
            raise ValueError(
                "min_replicas and max_replicas go together: set both (min_replicas 0 makes the model on demand), "
                "or neither for a fixed replica count"
            )
        if low is None or high is None:
            return self
        if low > high:
            raise ValueError(f"min_replicas ({low}) must not be above max_replicas ({high})")
        if "replicas" not in self.model_fields_set:
            self.replicas = low
        elif not low <= self.replicas <= high:
            raise ValueError(
                f"replicas ({self.replicas}) must be between min_replicas ({low}) and max_replicas ({high})"
            )
        return self

    @property
    def on_demand(self) -> bool:
        """Loaded when called and evictable: ``min_replicas`` is 0."""
        return self.min_replicas == 0

    @model_validator(mode="after")
    def _source_fields(self) -> ModelSpec:
        required, allowed = SOURCE_FIELDS[self.source]
        for field in required:
            if getattr(self, field) is None:
                raise ValueError(f"{field} is required when source is {self.source.value!r}")
        for field in ALL_SOURCE_FIELDS:
            if field not in allowed and getattr(self, field) is not None:
                raise ValueError(
                    f"{field} does not apply to source {self.source.value!r} (it uses {', '.join(allowed)})"
                )
        if (
            self.local_path is not None
            and not self.local_path.startswith("/")
            and not re.match(r"^[A-Za-z]:[\\/]", self.local_path)
        ):
            raise ValueError("local_path must be an absolute path on the worker")
        return self


class ModelCreate(ModelSpec):
    pass


class ModelUpdate(RequestModel):
    """A partial change. Fields left out keep their value; ``null`` clears a nullable field."""

    name: Annotated[str, AfterValidator(_model_name)] | None = None
    source: ModelSource | None = None
    huggingface_repo_id: str | None = None
    huggingface_filename: str | None = None
    modelscope_model_id: str | None = None
    modelscope_file_path: str | None = None
    ollama_library_model_name: str | None = None
    local_path: str | None = None
    backend: Backend | None = None
    backend_parameters: list[str] | None = None
    replicas: int | None = Field(None, ge=0, le=1000)
    placement_strategy: PlacementStrategy | None = None
    cpu_offloading: bool | None = None
    distributed_inference_across_workers: bool | None = None
    worker_selector: Labels | None = None
    gpu_selector: GpuSelector | None = None
    ctx_size: int | None = Field(None, ge=1, le=10_000_000)
    description: str | None = None
    min_replicas: int | None = Field(None, ge=0, le=1000)
    max_replicas: int | None = Field(None, ge=0, le=1000)
    idle_timeout: int | None = Field(None, ge=1, le=30 * 24 * 3600)
    priority: int | None = Field(None, ge=-1000, le=1000)
    max_concurrent_requests: int | None = Field(None, ge=1, le=10_000)
    max_queue: int | None = Field(None, ge=0, le=100_000)
    queue_timeout: int | None = Field(None, ge=1, le=24 * 3600)

    @model_validator(mode="after")
    def _not_null(self) -> ModelUpdate:
        for field in (
            "name",
            "source",
            "replicas",
            "placement_strategy",
            "cpu_offloading",
            "distributed_inference_across_workers",
            "backend_parameters",
            "worker_selector",
            "priority",
            "max_queue",
            "queue_timeout",
        ):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self

    def merged_onto(self, current: dict[str, Any]) -> ModelSpec:
        """The spec after this update; raises ``ValidationError`` if the result is invalid."""
        changes = self.model_dump(exclude_unset=True)
        if "source" in changes and changes["source"] != current.get("source"):
            # Switching source: the old source's fields no longer apply unless re-sent.
            current = {k: v for k, v in current.items() if k not in ALL_SOURCE_FIELDS}
        merged = {**current, **changes}
        low, high = merged.get("min_replicas"), merged.get("max_replicas")
        if "replicas" not in changes and low is not None and high is not None and low <= high:
            # New bounds move the current target inside them; a replicas sent with them must fit.
            merged["replicas"] = min(max(int(merged.get("replicas") or 0), low), high)
        return ModelSpec.model_validate(merged)


class ModelPublic(PublicModel):
    id: int
    name: str
    source: ModelSource
    huggingface_repo_id: str | None
    huggingface_filename: str | None
    modelscope_model_id: str | None
    modelscope_file_path: str | None
    ollama_library_model_name: str | None
    local_path: str | None
    backend: Backend | None
    backend_parameters: list[str]
    replicas: int
    placement_strategy: PlacementStrategy
    cpu_offloading: bool
    distributed_inference_across_workers: bool
    worker_selector: dict[str, str]
    gpu_selector: GpuSelector | None
    ctx_size: int | None
    description: str | None
    created_at: datetime
    updated_at: datetime
    ready_replicas: int = 0  # instances running now
    # Rolling replacement after a change to any field but replicas/description (docs/deployments.md):
    spec_hash: str | None = None  # fingerprint of the current spec; instances carry the one they were made for
    updated_replicas: int = 0  # instances (not stopping) of the current spec, in any state
    outdated_replicas: int = 0  # instances (not stopping) of an earlier spec: > 0 while a roll is under way
    # Only in the answer to a create or an update (None elsewhere): how many of ``replicas`` the cluster
    # has room for now, and, when that is fewer, a warning saying so and why (the rest stay pending).
    placeable_replicas: int | None = None
    warnings: list[str] = Field(default_factory=list)
    min_replicas: int | None = None
    max_replicas: int | None = None
    idle_timeout: int | None = None
    priority: int = 0
    max_concurrent_requests: int | None = None
    max_queue: int = DEFAULT_MAX_QUEUE
    queue_timeout: int = DEFAULT_QUEUE_TIMEOUT
    running_replicas: int = 0  # = ready_replicas
    loading_replicas: int = 0  # pending, scheduled, downloading or starting
    queued_requests: int = 0  # requests waiting in the gateway's queue for this model, on all servers
    last_request_at: datetime | None = None  # the last /v1 request for this model began or ended
