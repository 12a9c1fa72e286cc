"""Inference engines a worker can run, by backend name (``ENGINES["llama.cpp"]``).

The registry is filled by the engine modules (llama.cpp, vLLM) as they are added;
the supervisor looks engines up here and never branches on backend names.
"""

from __future__ import annotations

from typing import Protocol

from gpufleet.schemas.instances import InstancePublic


class Engine(Protocol):
    name: str

    async def start(self, instance: InstancePublic) -> int:
        """Start serving ``instance``; returns the engine's OS pid."""
        ...

    async def stop(self, instance_id: int) -> None: ...


ENGINES: dict[str, Engine] = {}
DEFAULT_BACKEND = "llama.cpp"
