"""Inference engines as a worker runs them, by backend name: ``ENGINES["llama.cpp"]``.

Each entry makes the ``Engine`` (``worker.engines.base``) for this worker's options. The
supervisor, the instance runner and ``gpufleet engines`` reach engines only through it and never
branch on a backend name; a second engine is one launch module, one entry here, one description
in ``gpufleet.engines`` and their tests.

Modules inside this package import each other directly, never this ``__init__``.

Every worker discovers every engine at start (``Engine.discover``, which must stay cheap and
quiet where the engine is not installed: reading a few small files, no subprocess, no import of
the engine) and reports the versions it found in its status. ``gpufleet engines`` installs and
lists the same set.
"""

from __future__ import annotations

from collections.abc import Callable

from gpufleet.worker.engines.base import Engine, EngineOptions, EngineUnavailable
from gpufleet.worker.engines.llama_cpp_engine import LlamaCppEngine
from gpufleet.worker.engines.vllm_engine import VllmEngine

__all__ = ["ENGINES", "Engine", "EngineOptions", "EngineUnavailable", "engines_for"]

ENGINES: dict[str, Callable[[EngineOptions], Engine]] = {
    LlamaCppEngine.name: LlamaCppEngine,
    VllmEngine.name: VllmEngine,
}


def engines_for(options: EngineOptions) -> dict[str, Engine]:
    """One engine of each kind, set up for this worker."""
    return {name: make(options) for name, make in ENGINES.items()}
