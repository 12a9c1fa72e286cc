"""Inference engines as a worker runs them, by backend name: ``ENGINES["llama.cpp"]``.

Each entry makes the ``Engine`` (``worker.engines.base``) for this worker's options. The
supervisor, the instance runner and ``gpufleet engines`` reach engines only through it and never
branch on a backend name; a second engine is one launch module, one entry here, one description
in ``gpufleet.engines`` and their tests.

Modules inside this package import each other directly, never this ``__init__``.
"""

from __future__ import annotations

from collections.abc import Callable

from gpufleet.worker.engines.base import Engine, EngineOptions, EngineUnavailable
from gpufleet.worker.engines.llama_cpp_engine import LlamaCppEngine

__all__ = ["ENGINES", "Engine", "EngineOptions", "EngineUnavailable", "engines_for"]

ENGINES: dict[str, Callable[[EngineOptions], Engine]] = {LlamaCppEngine.name: LlamaCppEngine}


def engines_for(options: EngineOptions) -> dict[str, Engine]:
    """One engine of each kind, set up for this worker."""
    return {name: make(options) for name, make in ENGINES.items()}
