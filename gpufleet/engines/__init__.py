"""The inference engines gpufleet can place, by backend name: ``ENGINES["llama.cpp"]``.

The scheduler's filters, the scheduling service and the API's validation ask the registry,
never a backend name. Adding an engine is one description here (device types, parameter check,
estimator), one launcher in ``worker/engines/`` and its tests.
"""

from __future__ import annotations

from gpufleet.engines.base import CannotEstimate, EngineDescription
from gpufleet.engines.llama_cpp import LLAMA_CPP
from gpufleet.engines.vllm import VLLM
from gpufleet.schemas.models import Backend

ENGINES: dict[str, EngineDescription] = {LLAMA_CPP.name: LLAMA_CPP, VLLM.name: VLLM}
DEFAULT_BACKEND = LLAMA_CPP.name  # for a deployment that names none (GGUF models)

__all__ = [
    "DEFAULT_BACKEND",
    "ENGINES",
    "CannotEstimate",
    "EngineDescription",
    "backend_name",
    "engine_for",
    "engine_for_format",
    "supported_device_types",
]


def backend_name(backend: Backend | str | None) -> str:
    """The backend a deployment runs on: the one it names, else the default."""
    if backend is None:
        return DEFAULT_BACKEND
    return backend.value if isinstance(backend, Backend) else backend


def engine_for(backend: Backend | str | None) -> EngineDescription:
    """The description of a deployment's engine; ``CannotEstimate`` for one gpufleet cannot run yet."""
    name = backend_name(backend)
    engine = ENGINES.get(name)
    if engine is None:
        available = ", ".join(sorted(ENGINES))
        raise CannotEstimate(
            f"backend {name} is not available in this gpufleet yet (available: {available}); "
            "use backend llama.cpp with a GGUF model",
            field="backend",
        )
    return engine


def supported_device_types(backend: str) -> frozenset[str]:
    """Device types the backend runs on; none for a backend that is not available."""
    engine = ENGINES.get(backend)
    return engine.device_types if engine is not None else frozenset()


def engine_for_format(model_format: str) -> EngineDescription | None:
    """The engine that serves a model format (``model_format``): llama.cpp first for GGUF."""
    return next((e for e in ENGINES.values() if e.model_format == model_format), None)
