"""Support code for gpufleet's tests and benchmarks, never shipped in the package.

``synthetic`` writes GGUF models of real llama.cpp architectures with random (or absent) weights,
so tests and benchmarks run real engines on real file layouts without downloading anything.
Importable from the repository root (``pytest`` and ``python -m benchmarks.…`` run there).
"""
