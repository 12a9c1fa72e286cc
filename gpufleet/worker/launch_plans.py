"""What a worker launches for an instance: the engine's server on the main worker, the part on a
subordinate (and, for an engine that runs a cluster, its head first), each with its ports, threads,
model files and API key. The supervisor's runners and parts call these as their planners.

Blocking steps (installing the engine, taking ports, reading the model's header) run in a thread. A
step that fails raises ``PrepareError`` with the reason, and gives back the ports it took.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from gpufleet.common.errors import GpufleetError
from gpufleet.common.gguf_files import ModelFileError
from gpufleet.engines import backend_name
from gpufleet.schemas.instances import InstancePublic, Subordinate
from gpufleet.schemas.models import ModelPublic
from gpufleet.worker.client import ServerClient, ServerRejected, ServerUnavailable
from gpufleet.worker.cluster_heads import ClusterHeads
from gpufleet.worker.downloads import LAYOUTS, ModelFiles, Progress
from gpufleet.worker.engine_share import cpu_share, ports_of_others, uses_cpu
from gpufleet.worker.engines.base import Engine, PartRequest, ServerRequest
from gpufleet.worker.engines.process import key_digest
from gpufleet.worker.ports import PortPool
from gpufleet.worker.rpc_part import NoHeadYet, PartLaunch
from gpufleet.worker.runner import Launch, PrepareError, WaitParts, parts_of


class LaunchPlanner:
    """Plans launches for one worker; ``desired`` is the supervisor's own table of its instances
    (read for the CPU share and the ports of other engines), ``worker_id`` set once registered."""

    def __init__(
        self,
        client: ServerClient,
        engines: Mapping[str, Engine],
        model_files: ModelFiles,
        *,
        ports: PortPool,
        rpc_ports: PortPool,
        heads: ClusterHeads,
        bind_host: str,
        logs: Path,
        desired: Mapping[int, InstancePublic],
    ) -> None:
        self.client = client
        self.engines = engines
        self.model_files = model_files
        self.ports = ports
        self.rpc_ports = rpc_ports
        self.heads = heads
        self.bind_host = bind_host
        self.logs = logs
        self.desired = desired
        self.worker_id: int | None = None

    def engine(self, model: ModelPublic) -> Engine:
        name = backend_name(model.backend)
        engine = self.engines.get(name)
        if engine is None:
            raise PrepareError(f"this worker cannot run backend {name} (it runs {', '.join(sorted(self.engines))})")
        return engine

    async def model(self, instance: InstancePublic) -> ModelPublic:
        if instance.model_id is None:
            raise PrepareError("the deployment of this instance was deleted")
        try:
            return await self.client.model(instance.model_id)
        except (ServerRejected, ServerUnavailable) as exc:
            raise PrepareError(f"cannot read the deployment: {exc}") from exc

    async def server(self, instance: InstancePublic, progress: Progress, wait_parts: WaitParts) -> Launch:
        """The instance's server on this (main) worker: its model files first (downloads report
        ``progress``), then its cluster head if the engine runs one, then every part ready, then the
        command line on a free port of the service range."""
        model = await self.model(instance)
        engine = self.engine(model)
        try:
            path = await self.model_files.path_for(model, progress, LAYOUTS[engine.model_layout])
        except ModelFileError as exc:
            raise PrepareError(str(exc)) from exc
        head = None
        if engine.cluster_head and instance.subordinates:
            assert self.worker_id is not None
            share = cpu_share(self.desired.values(), self.worker_id)
            head = await self.heads.ensure(
                instance.id, instance.name, self.worker_id, engine, instance.device_ids, share, instance.ray_head
            )
        instance = await wait_parts(head)  # as it is now: its parts ready, its head (if any) recorded
        parts = instance.subordinates
        api_key = await self.engine_key(instance.id)
        avoid = ports_of_others(self.desired.values(), self.worker_id, instance.id)
        threads = cpu_share(self.desired.values(), self.worker_id) if uses_cpu(instance) else None

        def blocking() -> Launch:
            port = None
            try:
                engine.ensure_installed()
                port = self.ports.acquire(avoid)
                endpoints = [p.endpoint for p in parts]
                request = ServerRequest(
                    model, instance, path, self.bind_host, port, api_key, endpoints, threads=threads
                )
                launch = engine.server_launch(request)
            except (GpufleetError, OSError) as exc:
                if port is not None:
                    self.ports.release(port)
                raise PrepareError(str(exc)) from exc
            log = self.logs / f"{instance.name}.log"
            program, health = engine.program, engine.health_path
            return Launch(launch.command, launch.env, port, log, parts_of(parts), program, health, key_digest(api_key))

        return await asyncio.to_thread(blocking)

    async def engine_key(self, instance_id: int) -> str:
        try:
            return await self.client.engine_key(instance_id)
        except (ServerRejected, ServerUnavailable) as exc:
            raise PrepareError(f"cannot read the engine's API key: {exc}") from exc

    async def part(self, instance: InstancePublic, part: Subordinate) -> PartLaunch:
        """This worker's part in another worker's instance, on ports of the RPC range; ``NoHeadYet``
        while the engine's cluster head is not reported."""
        engine = self.engine(await self.model(instance))
        if engine.cluster_head and instance.ray_head is None:
            raise NoHeadYet(f"waiting for the {engine.part_program} head on {instance.worker_name}")
        threads = cpu_share(self.desired.values(), self.worker_id)
        assert self.worker_id is not None
        worker_id, head = self.worker_id, instance.ray_head if engine.cluster_head else None

        def blocking() -> PartLaunch:
            ports: list[int] = []
            try:
                engine.ensure_installed()
                ports = self.rpc_ports.acquire_many(engine.part_ports(head=False, device_ids=part.device_ids))
                request = PartRequest(instance.id, worker_id, self.bind_host, ports, part.device_ids, threads, head)
                launch = engine.part_launch(request)
            except (GpufleetError, OSError, ValueError) as exc:
                for port in ports:
                    self.rpc_ports.release(port)
                raise PrepareError(str(exc)) from exc
            return PartLaunch(launch.command, launch.env, tuple(ports), engine.part_program, head, engine.part_stopped)

        return await asyncio.to_thread(blocking)
