"""The worker's side of the instance lifecycle: make local engines match the desired instances.

The agent feeds every instance event of this worker's watch stream into ``apply()`` and the full
listing after each (re)connection into ``resync()``. Per instance where this worker is the main
worker:

- ``scheduled`` (or ``error``, ``starting``, ``running``… without an engine of ours): an
  ``InstanceRunner`` starts the engine and keeps it running (restarts with back-off, releases the
  placement after repeated failed starts);
- on a simulated device (``--device-inventory``): ``error`` — an engine never starts on a device
  that does not exist;
- ``stopping``: stop the engine, then release the instance (the server deletes it);
- gone from the listing or deleted: stop the engine.

Where this worker is an RPC subordinate of another worker's instance, an ``RpcPart`` runs the
engine's part for it (``rpc_part``: ggml-rpc-server for llama.cpp, a Ray node for vLLM), and stops
it with the instance. For an engine that runs a cluster across workers (vLLM on Ray), the main worker
also runs the cluster's head (``cluster_heads``), started before the server and stopped with it.

Engines are reached through ``worker.engines`` (one ``Engine`` per backend, chosen by the
deployment's ``backend``): this module knows no engine's binaries, flags or health endpoint.

Engines recorded by an earlier run of this worker and still alive are re-adopted (same pid), not
restarted, when they were started for the instance's current placement (the same devices: an
instance moved away and placed here again may have others) and with its current engine API key
(fetched from the server's worker-only route and passed to the engine in its environment); others
are restarted. ``reconcile_all()`` runs after every heartbeat as a level-triggered safety net.
When the worker is stopped (Ctrl-C, SIGTERM), ``shutdown()`` then ``stop_engines()`` end every
engine it tracks, unless ``--keep-engines`` leaves them for the next start to re-adopt.

Events can arrive out of order (a server relays another server's changes later than its own):
late ones are ignored (``late_events``).

``apply()``, ``resync()`` and ``reconcile_all()`` each run to the end once begun, even when their
caller is cancelled (the agent drops a watch stream to list afresh): stopped half-way, an engine
could be left running but tracked nowhere, and a second one started for the same instance. Every
engine, runner and record is also dropped from this supervisor's tables only once it is stopped, so
that a cancellation at shutdown leaves it to be found again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

from gpufleet.common.errors import GpufleetError
from gpufleet.schemas.events import Event, EventKind, EventType
from gpufleet.schemas.instances import InstancePublic, InstanceTransition
from gpufleet.schemas.states import InstanceState
from gpufleet.worker.client import ServerClient, ServerRejected, ServerUnavailable
from gpufleet.worker.cluster_heads import ClusterHeads, end_cluster_processes
from gpufleet.worker.downloads import ModelFiles
from gpufleet.worker.engine_share import ENGINE_STATES
from gpufleet.worker.engines.base import Engine
from gpufleet.worker.engines.process import STOP_DEADLINE, EngineProcess, adoptable, forget, key_digest
from gpufleet.worker.late_events import LateEvents
from gpufleet.worker.launch_plans import LaunchPlanner
from gpufleet.worker.ports import PortPool
from gpufleet.worker.rpc_part import ROLE as RPC_ROLE
from gpufleet.worker.rpc_part import RpcPart
from gpufleet.worker.runner import InstanceRunner, placement_of

logger = logging.getLogger(__name__)

S = InstanceState
# Seconds engines get to exit after SIGTERM when gpufleet stops (then SIGKILL): short, so that the whole
# stop of ``gpufleet start`` stays within 10 s (the server's graceful shutdown takes up to 5 more).
SHUTDOWN_GRACE = 3.0


class Supervisor:
    def __init__(
        self,
        client: ServerClient,
        *,
        data_dir: Path,
        bind_host: str,
        ports: range,
        rpc_ports: range,
        allowed_model_dirs: list[Path],
        engines: Mapping[str, Engine],
        restart_backoff: float = 10.0,
        start_timeout: float = 600.0,
        huggingface_token: str | None = None,
    ) -> None:
        self.client = client
        self.simulated_device_ids: set[str] = set()
        self.desired: dict[int, InstancePublic] = {}
        self.runners: dict[int, InstanceRunner] = {}
        self.records = data_dir / "engines"
        self.logs = data_dir / "logs" / "instances"
        self.bind_host = bind_host
        self.ports = PortPool(ports, bind_host)
        self.rpc_ports = PortPool(rpc_ports, bind_host)
        # where this worker reaches its own engines: their bind address, or loopback for a wildcard
        wildcard = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}
        self.engine_host = wildcard.get(bind_host, bind_host)
        self.parts: dict[int, RpcPart] = {}
        model_files = ModelFiles(data_dir, allowed_model_dirs, client, huggingface_token=huggingface_token)
        self.engines = engines
        self.restart_backoff = restart_backoff
        self.start_timeout = start_timeout
        self.heads = ClusterHeads(
            self.records, self.logs, self.rpc_ports, host=bind_host, connect_host=self.engine_host
        )
        self.plans = LaunchPlanner(
            client,
            engines,
            model_files,
            ports=self.ports,
            rpc_ports=self.rpc_ports,
            heads=self.heads,
            bind_host=bind_host,
            logs=self.logs,
            desired=self.desired,
        )
        found = end_cluster_processes(adoptable(self.records), engines, self.records)
        self.adopted: dict[int, EngineProcess] = {p.record.instance_id: p for p in found if p.record.role == "server"}
        self.adopted_parts: dict[int, EngineProcess] = {
            p.record.instance_id: p for p in found if p.record.role == RPC_ROLE
        }
        for process in self.adopted.values():
            self.ports.hold(process.port)
        for process in self.adopted_parts.values():
            self.rpc_ports.hold(process.port)
        self._lock = asyncio.Lock()
        self.late = LateEvents()
        self._work: set[asyncio.Task[None]] = set()  # apply/resync/reconcile passes under way

    @property
    def worker_id(self) -> int | None:
        """This worker's id once registered (the agent sets it); None before."""
        return self.plans.worker_id

    @worker_id.setter
    def worker_id(self, worker_id: int | None) -> None:
        self.plans.worker_id = worker_id

    async def discover_engines(self) -> None:
        """Find installed engines now (never installing them here), so the first status reports them.

        One line for the engines not installed (every worker lacks vLLM until it serves a vLLM model):
        knowing is useful, a warning per engine at every start is not."""
        missing = []
        for engine in self.engines.values():
            try:
                await asyncio.to_thread(engine.discover)
            except GpufleetError as exc:
                logger.warning("%s: %s", engine.name, exc.message)
            if engine.version is None:
                missing.append(engine.name)
        if missing:
            logger.info(
                "not installed here yet: %s (the first instance placed here that needs one installs it)",
                ", ".join(missing),
            )

    @property
    def engine_versions(self) -> dict[str, str]:
        return {name: engine.version for name, engine in self.engines.items() if engine.version}

    # --- fed by the agent -----------------------------------------------------------------------
    async def apply(self, event: Event) -> None:
        if event.kind != EventKind.INSTANCES or event.id is None:
            return
        await self._to_the_end(self._apply(event.id, event))

    async def resync(self, listed: set[int]) -> None:
        """After a (re)connection: stop what the listing no longer has, including unclaimed adopted engines."""
        await self._to_the_end(self._resync(listed))

    async def reconcile_all(self) -> None:
        await self._to_the_end(self._reconcile_all())

    async def shutdown(self) -> None:
        """The worker is stopping: stop watching engines (no pass or runner reports anything after this).

        Engines keep running: ``stop_engines`` stops them, or (``--keep-engines``) a restarted worker
        re-adopts them. A pass still under way is cancelled: what it had not finished stopping stays
        tracked here and recorded on disk."""
        passes = list(self._work)
        for work in passes:
            work.cancel()
        await asyncio.gather(*passes, return_exceptions=True)
        tasks = [r.task for r in self.runners.values()] + [p.task for p in self.parts.values()]
        for task in tasks:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in tasks if t is not None), return_exceptions=True)

    async def stop_engines(self, grace: float = SHUTDOWN_GRACE) -> None:
        """After ``shutdown``: stop every engine this worker tracks, together (SIGTERM, ``grace``, SIGKILL).

        Servers and RPC servers, started now or adopted; each one's record is removed and its port
        freed, so the next start adopts nothing. Together, so that many engines stop in one grace."""
        stops = [r.stop(grace) for r in self.runners.values()] + [p.stop(grace) for p in self.parts.values()]
        for adopted, pool in ((self.adopted, self.ports), (self.adopted_parts, self.rpc_ports)):
            stops += [self._discard(process, adopted, pool, grace) for process in list(adopted.values())]
        await asyncio.gather(*stops, self.heads.stop_all(grace))
        self.runners.clear()
        self.parts.clear()

    def kill_engines(self) -> None:
        """Stop at once (a second Ctrl-C): SIGKILL every engine tracked here and remove its record.

        Synchronous, for a signal handler that exits the process right after."""
        processes = [r.process for r in self.runners.values()] + [p.process for p in self.parts.values()]
        processes += [*self.adopted.values(), *self.adopted_parts.values()]
        for process in processes:
            if process is not None:
                process.kill()
                forget(self.records, process.record.instance_id, process.record.role)
        self.heads.kill_all()

    async def _to_the_end(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in a task of its own, which a cancelled caller leaves running to the end."""
        task = asyncio.create_task(work)
        self._work.add(task)
        task.add_done_callback(self._work.discard)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_log_failure)  # nobody awaits it any more
            raise

    async def _apply(self, instance_id: int, event: Event) -> None:
        async with self._lock:
            held = self.desired.get(instance_id)
            held_version = held.version if held is not None else None
            if event.object is not None and self.late.is_late(instance_id, held_version, event.object):
                logger.debug("ignoring a late event of instance %d (version %s)", instance_id, event.object["version"])
                return
            if event.type == EventType.DELETED:
                self.desired.pop(instance_id, None)
                if event.object is not None:
                    self.late.deleted_at(instance_id, event.object)
                await self._stop(instance_id)
                return
            if event.object is None:
                return
            instance = InstancePublic.model_validate(event.object)
            self.late.applied(instance_id)
            self.desired[instance.id] = instance
            await self._converge(instance)

    async def _resync(self, listed: set[int]) -> None:
        async with self._lock:
            for instance_id in (set(self.desired) | set(self.runners) | set(self.parts)) - listed:
                self.desired.pop(instance_id, None)
                await self._stop(instance_id)
            for instance_id in (set(self.adopted) | set(self.adopted_parts)) - listed:
                logger.info("stopping the engine of instance %d: it is no longer ours", instance_id)
                await self._stop(instance_id)

    async def _reconcile_all(self) -> None:
        async with self._lock:
            for instance in list(self.desired.values()):
                await self._converge(instance)

    # --- decisions ------------------------------------------------------------------------------
    async def _converge(self, instance: InstancePublic) -> None:
        if instance.worker_id != self.worker_id:
            if instance.id in self.runners or instance.id in self.adopted:
                # placed elsewhere since (this worker was lost for longer than the reschedule grace)
                logger.info("instance %s now runs on %s: stopping its engine here", instance.name, instance.worker_name)
                await self._stop(instance.id)
            await self._converge_part(instance)
            return
        runner = self.runners.get(instance.id)
        if runner is not None:
            runner.update(instance)
        try:
            if instance.state == S.STOPPING:
                await self._stop(instance.id)
                await self.client.release(instance.id, instance.version, "stopped by the worker")
            elif instance.state in ENGINE_STATES and runner is None:
                await self._take_on(instance)
        except ServerRejected as exc:
            if exc.status_code in (404, 409):
                logger.info("instance %s moved on the server meanwhile: %s", instance.name, exc.detail)
            else:
                logger.error("server refused an update of instance %s: %s", instance.name, exc)
        except ServerUnavailable as exc:
            logger.warning("could not report instance %s: %s (will retry)", instance.name, exc)

    async def _converge_part(self, instance: InstancePublic) -> None:
        """This worker lends devices to another worker's instance: run (or stop) its RPC server."""
        part = self.parts.get(instance.id)
        mine = any(p.worker_id == self.worker_id for p in instance.subordinates)
        if instance.state == S.STOPPING or not mine or instance.state not in ENGINE_STATES:
            if part is not None or instance.id in self.adopted_parts:
                await self._stop(instance.id)
            return
        if part is not None:
            part.update(instance)
            return
        assert self.worker_id is not None
        part = RpcPart(
            instance,
            self.worker_id,
            self.client,
            self.plans.part,
            self.records,
            self.logs / f"{instance.name}-rpc.log",
            self.rpc_ports.release,
            connect_host=self.engine_host,
            backoff=self.restart_backoff,
            adopted=self.adopted_parts.pop(instance.id, None),
        )
        self.parts[instance.id] = part
        part.start()

    async def _take_on(self, instance: InstancePublic) -> None:
        simulated = [d for d in instance.device_ids if d in self.simulated_device_ids]
        if simulated:
            if instance.state != S.ERROR:
                message = (
                    f"cannot start an engine on simulated device(s) {', '.join(simulated)}: this worker runs "
                    "with --device-inventory, for capacity planning only"
                )
                await self.client.transition(
                    instance.id,
                    InstanceTransition(expected_version=instance.version, state=S.ERROR, state_message=message),
                )
            return
        runner = InstanceRunner(
            instance,
            self.client,
            self.plans.server,
            self.records,
            self.ports.release,
            backoff=self.restart_backoff,
            start_timeout=self.start_timeout,
            engine_host=self.engine_host,
            adopted=await self._adopted_server(instance),
        )
        self.runners[instance.id] = runner
        runner.start()

    async def _stop(self, instance_id: int) -> None:
        """Stop whatever this worker runs for the instance: its engine, its RPC server, adopted ones.

        Each leaves this supervisor's tables only once stopped: a stop cut short leaves it tracked,
        and the next pass stops it again (stopping twice is harmless)."""
        runner = self.runners.get(instance_id)
        if runner is not None:
            await runner.stop()
            if self.runners.get(instance_id) is runner:
                del self.runners[instance_id]
        await self.heads.stop(instance_id)
        part = self.parts.get(instance_id)
        if part is not None:
            await part.stop()
            if self.parts.get(instance_id) is part:
                del self.parts[instance_id]
        for adopted, pool in ((self.adopted, self.ports), (self.adopted_parts, self.rpc_ports)):
            process = adopted.get(instance_id)
            if process is not None:
                await self._discard(process, adopted, pool)

    async def _discard(
        self,
        process: EngineProcess,
        adopted: dict[int, EngineProcess],
        pool: PortPool,
        grace: float = STOP_DEADLINE,
    ) -> None:
        """Stop an adopted engine, forget its record, free its port; then drop it from ``adopted``."""
        instance_id = process.record.instance_id
        await process.stop(grace)
        forget(self.records, instance_id, process.record.role)
        pool.release(process.port)
        if adopted.get(instance_id) is process:
            del adopted[instance_id]

    async def _adopted_server(self, instance: InstancePublic) -> EngineProcess | None:
        """The engine an earlier run left for this instance, if it may go on serving: one started for
        another placement, or without an API key (by a gpufleet before engines had keys, listening to
        anyone, maybe on every interface) or with another key, is stopped, and the runner starts a
        fresh one. It leaves ``adopted`` only once decided (and, if refused, stopped)."""
        process = self.adopted.get(instance.id)
        if process is None:
            return None
        why = await self._refusal(instance, process)
        if why is None:
            del self.adopted[instance.id]
            return process
        logger.info("restarting the engine of instance %s: %s", instance.name, why)
        await self._discard(process, self.adopted, self.ports)
        return None

    async def _refusal(self, instance: InstancePublic, process: EngineProcess) -> str | None:
        """Why an adopted engine may not serve the instance as it is placed now; None when it may."""
        if process.record.placement != placement_of(instance):
            return f"it was started for another placement ({', '.join(process.record.placement) or 'unrecorded'})"
        if not process.record.key_digest:
            return "it was started without an API key"
        try:
            if process.record.key_digest == key_digest(await self.client.engine_key(instance.id)):
                return None
        except ServerUnavailable:
            return None  # cannot tell now: keep it serving (it requires a key either way)
        except ServerRejected as exc:
            return f"its API key could not be checked ({exc.detail})"
        return "it was started without its current API key"

    # --- read by the worker's API -----------------------------------------------------------------
    def log_path(self, instance_id: int) -> Path | None:
        """The engine log of an instance this worker runs as main worker; None when it is not ours (any more).

        The file may not exist yet (the engine has not started). A follower of the log stops
        when this turns None: the instance was deleted, stopped or placed elsewhere.
        """
        instance = self.desired.get(instance_id)
        if instance is None or self.worker_id is None or instance.worker_id != self.worker_id:
            return None
        return self.logs / f"{instance.name}.log"


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("a pass over this worker's instances failed", exc_info=task.exception())
