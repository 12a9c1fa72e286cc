"""What the control plane must know of an inference engine, before any worker runs it.

An ``EngineDescription`` answers the scheduler's and the API's questions about one backend:
which device types it runs on, whether a deployment's ``backend_parameters`` are acceptable, and
how much memory a deployment needs (its estimator). Everything here is pure or reads model
headers only: no database, no worker. What a worker needs to run the engine (binaries, command
lines, health checks) is in ``worker/engines/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gpufleet.common.errors import InvalidInput
from gpufleet.estimate.memory import Estimator
from gpufleet.estimate.vllm_model import VllmModel
from gpufleet.schemas.models import ModelSpec


class CannotEstimate(InvalidInput):
    """A deployment's memory cannot be estimated (file unreadable, not a model, no such engine)."""

    code = "cannot_estimate"


class EngineDescription(Protocol):
    name: str  # the ``backend`` value that selects it
    device_types: frozenset[str]  # device types it can run on (cuda, rocm, metal, cpu)
    model_format: str  # what it serves (``model_format``: gguf | safetensors); picks a deployment's default

    def check_parameters(self, ctx_size: int | None, parameters: Sequence[str]) -> None:
        """Raise ``InvalidInput`` (message for the person) if the engine cannot run with these."""
        ...

    def parallel_slots(self, parameters: Sequence[str]) -> int:
        """How many requests one instance serves at once with these parameters (the gateway's default
        ``max_concurrent_requests``). Parameters it cannot read count as the engine's default."""
        ...

    def estimator(self, spec: ModelSpec) -> Estimator | VllmModel:
        """The memory estimator of the deployment's model for its run settings. Blocking (file or
        network reads): call from a thread. Raises ``CannotEstimate``."""
        ...
