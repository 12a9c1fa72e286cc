"""The seams of the scheduler: what a request, a placement and a verdict are; what plugins implement.

A decision runs the ``filters`` over all workers at once (one boolean per worker, in
``snapshot.workers`` order: the *passing* mask), then asks the candidate kinds in order of
preference for placements on the passing workers, stopping at the first kind that yields any, then
scores those and keeps the best. A filter's ``check`` gives the same verdict for one worker with its
reason, for the message of an instance that stays pending. Everything here is pure: it reads a
``ClusterSnapshot`` and an ``Estimator``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import numpy as np

from gpufleet.common.resources import Resources, total_by_device
from gpufleet.estimate.memory import Estimator
from gpufleet.estimate.vllm_model import VllmModel
from gpufleet.scheduler.snapshot import ClusterSnapshot, WorkerView


class Mode(StrEnum):
    SINGLE_GPU = "single_gpu"
    MULTI_GPU = "multi_gpu"
    DISTRIBUTED = "distributed"
    PARTIAL_OFFLOAD = "partial_offload"
    CPU = "cpu"


@dataclass(frozen=True)
class Request:
    """One instance to place: its deployment's placement rules and the model's memory estimator."""

    instance_id: int
    instance_name: str
    estimator: Estimator | VllmModel  # GGUF (llama.cpp) or safetensors (vLLM): decides the candidate kinds
    backend: str = "llama.cpp"
    placement_strategy: str = "spread"
    cpu_offloading: bool = False
    distributed: bool = True
    worker_selector: Mapping[str, str] = field(default_factory=dict)
    gpu_selector: tuple[str, ...] = ()  # device ids chosen by hand; empty = any
    avoid: Mapping[str, str] = field(default_factory=dict)  # worker name -> why it is avoided for now
    # Estimates already computed for this request (layer placement -> Estimate): shared by the kinds.
    estimates: dict[Any, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def gguf(self) -> Estimator:
        """The GGUF estimator; only the llama.cpp kinds ask (``scheduler.kinds_for`` routes by estimator)."""
        if not isinstance(self.estimator, Estimator):
            raise TypeError(f"{self.instance_name}: a llama.cpp kind was asked to place a vLLM model")
        return self.estimator


@dataclass(frozen=True)
class EngineClaim:
    """How a vLLM instance must be launched to hold what its placement claims (stored under
    ``claim["engine"]``; the worker reads exactly these keys). ``kv_cache_bytes``: the CPU's KV space
    (``VLLM_CPU_KVCACHE_SPACE``), None on GPUs (there vLLM sizes it from the utilization).
    ``pipeline_parallel_size``: the stages, one per worker (>1 only across workers, over Ray); readers
    take 1 where a claim written before it has none."""

    tensor_parallel_size: int
    gpu_memory_utilization: float
    max_model_len: int
    kv_cache_bytes: int | None = None
    pipeline_parallel_size: int = 1

    def as_json(self) -> dict[str, Any]:
        return {
            "tensor_parallel_size": self.tensor_parallel_size,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "max_model_len": self.max_model_len,
            "kv_cache_bytes": self.kv_cache_bytes,
            "pipeline_parallel_size": self.pipeline_parallel_size,
        }


@dataclass(frozen=True)
class Subordinate:
    worker_id: int
    worker_name: str
    device_ids: tuple[str, ...]
    claim: Resources


@dataclass(frozen=True)
class Placement:
    mode: Mode
    worker: WorkerView
    device_ids: tuple[str, ...]
    claim: Resources
    offload_layers: int
    total_layers: int
    tensor_split: tuple[float, ...] = ()
    subordinates: tuple[Subordinate, ...] = ()
    engine: EngineClaim | None = None  # vLLM's launch settings; None for llama.cpp

    def all_claims(self) -> dict[str, int]:
        """Every device this placement takes memory from, across workers."""
        return total_by_device([(self.worker.name, self.claim), *((s.worker_name, s.claim) for s in self.subordinates)])

    def describe(self) -> str:
        hosts = [self.worker.name, *(s.worker_name for s in self.subordinates)]
        devices = [*self.device_ids, *(d for s in self.subordinates for d in s.device_ids)]
        return f"{self.mode.value} on {', '.join(hosts)} ({', '.join(devices)})"

    def as_json(self) -> dict[str, Any]:
        """The claim stored on the instance and shown in previews."""
        return {
            "mode": self.mode.value,
            "worker_name": self.worker.name,
            "device_ids": list(self.device_ids),
            "claim": claim_json(self.claim, self.offload_layers, self.total_layers, self.tensor_split, self.engine),
            "subordinates": [
                {
                    "worker_id": s.worker_id,
                    "worker_name": s.worker_name,
                    "device_ids": list(s.device_ids),
                    "claim": claim_json(s.claim),
                }
                for s in self.subordinates
            ],
        }


def claim_json(
    claim: Resources,
    offload_layers: int | None = None,
    total_layers: int | None = None,
    tensor_split: Sequence[float] = (),
    engine: EngineClaim | None = None,
) -> dict[str, Any]:
    data = claim.as_json()
    if offload_layers is not None:
        data["offload_layers"] = offload_layers
        data["total_layers"] = total_layers
    if tensor_split:
        data["tensor_split"] = list(tensor_split)
    if engine is not None:
        data["engine"] = engine.as_json()
    return data


@dataclass(frozen=True)
class Status:
    """A filter's verdict on one worker. ``reason`` groups rejections in the summary."""

    ok: bool
    reason: str = ""
    detail: str = ""

    @staticmethod
    def fits() -> Status:
        return Status(True)


@dataclass(frozen=True)
class Unschedulable:
    """Nothing fits: a summary a person can act on, and the reason for each worker."""

    message: str
    reasons: tuple[tuple[str, str], ...]  # (worker name, reason)


class Filter(Protocol):
    """A yes/no on each worker. Invariant: ``passing(r, s)[i] == check(r, s.workers[i], s).ok``."""

    name: str

    def passing(self, request: Request, snapshot: ClusterSnapshot) -> np.ndarray:
        """One boolean per worker in ``snapshot.workers`` order (a fresh array): does it pass."""
        ...

    def check(self, request: Request, worker: WorkerView, snapshot: ClusterSnapshot) -> Status:
        """The verdict on one worker, with the reason shown when it is rejected."""
        ...


class CandidateKind(Protocol):
    mode: Mode

    def candidates(self, request: Request, passing: np.ndarray, snapshot: ClusterSnapshot) -> list[Placement]:
        """Placements on the workers where ``passing`` (one boolean per worker) is true."""
        ...


class Scorer(Protocol):
    def score(self, request: Request, placement: Placement, snapshot: ClusterSnapshot) -> float: ...
