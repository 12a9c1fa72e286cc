"""What a worker needs of an inference engine: install or find it, the command line that serves an
instance, the one that lends devices to another worker's instance, and how to tell it is healthy.

The supervisor and the instance runner drive every engine through this protocol
(``worker.engines.ENGINES``); only the engine's own module knows its binaries and flags. What
the control plane knows of an engine (device types, estimates) is in ``gpufleet.engines``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gpufleet.common.errors import Unavailable
from gpufleet.schemas.instances import InstancePublic
from gpufleet.schemas.models import ModelPublic

# Install progress: (what is happening, percent done or None).
Progress = Callable[[str, float | None], None]


class EngineUnavailable(Unavailable):
    """The engine cannot run here (not installed, cannot be built, a binary missing); the message
    says what was tried and what to do."""

    code = "engine_unavailable"


@dataclass(frozen=True)
class EngineOptions:
    """What a person set for this worker's engines (``--llama-server-path`` …); unset: find or install."""

    llama_server_path: Path | None = None
    rpc_server_path: Path | None = None


@dataclass(frozen=True)
class ServerLaunch:
    """A process to start: its command line and environment."""

    command: list[str]
    env: dict[str, str]


@dataclass(frozen=True)
class ServerRequest:
    """What the main worker serves: this instance of this deployment, from this file, on this port,
    to requests bearing ``api_key`` (the engine must take it from its environment or a file, never
    from its command line, which every user of the machine can read)."""

    model: ModelPublic
    instance: InstancePublic
    model_path: Path
    host: str
    port: int
    api_key: str
    rpc_endpoints: Sequence[str] = ()  # the devices other workers lend to it (distributed placements)
    # CPU threads: its share of the cores among this worker's CPU engines (None: the engine's default)
    threads: int | None = None


@dataclass(frozen=True)
class PartRequest:
    """A process of this worker in a distributed instance: what lends its devices (llama.cpp's RPC
    server on a subordinate) or, for an engine that runs a cluster (vLLM on Ray), a cluster node: the
    head on the main worker (``head`` None) or a node joining ``head`` from a subordinate.

    ``ports`` come from ``--rpc-server-port-range`` (``Engine.part_ports`` of them, released when the
    process stops); ``ports[0]`` is the one that listens once the process is ready."""

    instance_id: int
    worker_id: int
    host: str  # this worker's engine address, the one other workers reach
    ports: Sequence[int]
    device_ids: Sequence[str]
    threads: int
    head: str | None = None  # host:port of the cluster head to join; None: this process is the head


@dataclass(frozen=True)
class InstalledEngine:
    """One installed copy of an engine, as ``gpufleet engines list`` shows it."""

    engine: str
    version: str
    build: str  # the engine's own source version (a commit, a release)
    accelerator: str  # what it was built for: cpu, cuda, hip, metal
    location: str


class Engine(Protocol):
    name: str  # the deployment ``backend`` it serves
    program: str  # what its serving process is called in states and logs, e.g. "llama-server"
    health_path: str  # answers 200 once the model is loaded
    part_program: str  # what the process lending devices to another worker's instance is called
    # Whether a distributed instance also runs a cluster head on its main worker, which the
    # subordinates' parts join (vLLM: a Ray head); llama.cpp's main worker connects to its RPC servers.
    cluster_head: bool
    # what it loads, a key of ``worker.downloads.LAYOUTS``: "gguf" (one file) or "hf_directory"
    model_layout: str

    @property
    def version(self) -> str | None:
        """What the worker reports in its status; None until ``discover`` or ``ensure_installed`` found it."""
        ...

    # --- serving (blocking: call from a thread) --------------------------------------------------
    def discover(self) -> None:
        """Find an installed copy, never installing one (the first status reports its version)."""
        ...

    def ensure_installed(self) -> None:
        """Find, or else install, the engine (minutes the first time). Raises ``EngineUnavailable``."""
        ...

    def server_launch(self, request: ServerRequest) -> ServerLaunch:
        """The process that serves the instance (reads the model file's header). Raises a ``GpufleetError``."""
        ...

    def part_ports(self, *, head: bool, device_ids: Sequence[str]) -> int:
        """How many ports ``part_launch`` needs (of the worker's RPC range) for a head or a part."""
        ...

    def part_launch(self, request: PartRequest) -> ServerLaunch:
        """The process lending this worker's devices to a distributed instance (or its cluster head)."""
        ...

    def part_stopped(self, command: Sequence[str]) -> None:
        """After a part's process (started with ``command``) was stopped: end what it left running."""
        ...

    # --- installing (``gpufleet engines``) --------------------------------------------------------
    def installed(self) -> list[InstalledEngine]: ...

    def find_installed(self, accelerator: str | None) -> InstalledEngine | None:
        """The copy installed for this machine (or for ``accelerator``); None when it must be installed.
        Raises ``EngineUnavailable`` for an accelerator this machine cannot use."""
        ...

    def install(self, report: Progress, *, accelerator: str | None, jobs: int | None) -> InstalledEngine: ...
