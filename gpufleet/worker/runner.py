"""One instance's engine on its main worker: prepare, start, wait until healthy, watch, restart, stop.

States it reports (each a compare-and-swap on the server): ``starting`` when it launches the
engine's server (llama-server for llama.cpp), ``running`` once its health endpoint answers,
``error`` with the log's last lines when the engine exits or fails to start. It restarts after
10 s, doubling to at most 5 minutes; after 3 failed starts in a row on this worker it releases
the placement (``failed``), so the scheduler tries elsewhere and avoids this worker for a while.
A start that led to a healthy engine resets the count. The engine itself is reached through the
``Launch`` its planner returns (command, program name, health endpoint).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gpufleet.common.errors import Unavailable
from gpufleet.schemas.instances import InstancePublic, InstanceTransition, Subordinate
from gpufleet.schemas.states import InstanceState
from gpufleet.worker.client import ServerClient, ServerRejected, ServerUnavailable
from gpufleet.worker.downloads import Progress
from gpufleet.worker.engines.process import STOP_DEADLINE, EngineProcess, forget, launch, rotate, tail
from gpufleet.worker.ports import listens_on

logger = logging.getLogger(__name__)

S = InstanceState
FAILED_STARTS_BEFORE_RELEASE = 3
MAX_BACKOFF = 300.0
FORGIVE_AFTER = 600.0  # a run this long (seconds) resets the restart back-off


class PrepareError(Unavailable):
    """The engine cannot be started here (model file, binary, port); the message says why."""


# The RPC servers an engine was started with: subordinate worker id -> (rpc-server pid, endpoint).
Parts = dict[int, tuple[int | None, str]]


@dataclass(frozen=True)
class Launch:
    command: list[str]
    env: dict[str, str]
    port: int
    log: Path
    parts: Parts
    program: str  # what the engine's process is called, e.g. llama-server
    health_path: str  # answers 200 once the model is loaded
    key_digest: str = ""  # of the engine's API key (``process.key_digest``), kept in its record


def parts_of(subordinates: Sequence[Subordinate]) -> Parts:
    return {p.worker_id: (p.rpc_pid, p.endpoint) for p in subordinates}


def placement_of(instance: InstancePublic) -> list[str]:
    """What an engine's record keeps of its placement, to adopt it later only for the same one: its
    devices here, and each RPC subordinate's (by worker id). Device ids are written without the worker
    name (``cuda:0``), so renaming a worker does not restart its engines."""
    own = [_without_worker(d) for d in instance.device_ids]
    lent = [f"{p.worker_id}/{_without_worker(d)}" for p in instance.subordinates for d in p.device_ids]
    return sorted(own) + sorted(lent)


def _without_worker(device_id: str) -> str:
    return ":".join(device_id.split(":")[-2:])  # <worker-name>:<type>:<index> → <type>:<index>


# Waits until every part of a distributed instance is ready; returns the instance as it is then (its
# ``subordinates`` ready; none when not distributed). Given the port of the cluster head the main
# worker started (vLLM's Ray head), it reports it first.
WaitParts = Callable[[int | None], Awaitable[InstancePublic]]
# Builds the launch for an instance (model file, engine binary, port), reporting download progress.
Planner = Callable[[InstancePublic, Progress, WaitParts], Awaitable[Launch]]
WATCH_INTERVAL = 1.0  # seconds between checks of a running engine and its instance's state
PROGRESS_INTERVAL = 1.0  # seconds: at most one download_progress write per second


class InstanceRunner:
    def __init__(
        self,
        instance: InstancePublic,
        client: ServerClient,
        planner: Planner,
        records: Path,
        on_port_free: Callable[[int], None],
        *,
        backoff: float,
        start_timeout: float,
        engine_host: str = "127.0.0.1",
        adopted: EngineProcess | None = None,
    ) -> None:
        self.instance = instance
        self.client = client
        self.planner = planner
        self.records = records
        self.on_port_free = on_port_free
        self.backoff = backoff
        self.start_timeout = start_timeout
        self.engine_host = engine_host  # where this worker reaches its engines (their bind address)
        self.process = adopted
        self.parts: Parts = parts_of(instance.subordinates) if adopted else {}
        self.task: asyncio.Task[None] | None = None
        self.stopping = False
        self._progress_at = float("-inf")

    # --- driven by the supervisor ---------------------------------------------------------------
    def update(self, instance: InstancePublic) -> None:
        if instance.version >= self.instance.version:
            self.instance = instance

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"engine-{self.instance.name}")

    async def stop(self, deadline: float = STOP_DEADLINE) -> None:
        """Stop the engine (SIGTERM, ``deadline``, SIGKILL) and the loop watching it."""
        self.stopping = True
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.process is not None:
            await self.process.stop(deadline)
            self._cleanup()

    # --- the loop -------------------------------------------------------------------------------
    async def _run(self) -> None:
        failed_starts = 0  # in a row, on this worker
        crashes = 0  # in a row, for the back-off; a long healthy run forgives them
        while not self.stopping:
            started = asyncio.get_running_loop().time()
            message, healthy = await self._one_life()
            if self.stopping:
                return
            failed_starts = 0 if healthy else failed_starts + 1
            ran = asyncio.get_running_loop().time() - started
            crashes = 1 if healthy and ran > FORGIVE_AFTER else crashes + 1
            logger.warning("instance %s: %s", self.instance.name, message.splitlines()[0])
            # pid None: the process it names is gone; a listed pid is always the live engine's
            await self._report(S.ERROR, message, restart_count=self.instance.restart_count + 1, pid=None)
            if failed_starts >= FAILED_STARTS_BEFORE_RELEASE:
                await self._release(f"{failed_starts} failed starts on {self.instance.worker_name}: {message[-300:]}")
                return
            await asyncio.sleep(min(self.backoff * 2 ** (crashes - 1), MAX_BACKOFF))

    async def _one_life(self) -> tuple[str, bool]:
        """Start (or adopt) the engine and watch it until it ends: (why it ended, whether it was healthy)."""
        if self.process is None or not self.process.alive():
            try:
                plan = await self.planner(self.instance, self._progress, self._wait_parts)
            except PrepareError as exc:
                return str(exc), False
            await self._report(S.STARTING, f"starting {plan.program} on port {plan.port}", engine_command=plan.command)
            self.process = launch(
                self.records,
                self.instance.id,
                "server",
                plan.command,
                plan.port,
                plan.log,
                plan.env,
                program=plan.program,
                health_path=plan.health_path,
                key_digest=plan.key_digest,
                placement=placement_of(self.instance),
            )
            self.parts = plan.parts
            logger.info(
                "instance %s: started %s pid %d on port %d",
                self.instance.name,
                plan.program,
                self.process.pid,
                plan.port,
            )
        process = self.process
        program = process.record.program
        log = Path(process.record.log)
        if not await self._wait_healthy(process):
            code = process.exit_code()
            await process.stop()
            self._cleanup()
            why = "did not answer /health in time" if code is None else f"exited with code {code} while starting"
            return f"{program} {why}:\n{tail(log)}", False
        if self.instance.state not in (S.STARTING, S.RUNNING, S.UNREACHABLE):  # adopted while in error
            await self._report(S.STARTING, f"adopted {program} pid {process.pid} on port {process.port}")
        await self._report(S.RUNNING, None, port=process.port, pid=process.pid, engine_command=process.record.command)
        changed = await self._watch(process)
        if changed:
            await process.stop()
            self._cleanup()
            return changed, True
        code = process.exit_code()
        self._cleanup()
        return f"{program} exited{'' if code is None else f' with code {code}'}:\n{tail(log)}", True

    async def _watch(self, process: EngineProcess) -> str | None:
        """Watch a healthy engine until it exits (None) or must restart because an RPC server changed (why).

        While it runs, an instance marked ``unreachable`` (its worker or an RPC subordinate was lost)
        is reported ``running`` again once every RPC part is back, unchanged, and the engine answers.
        """
        while process.alive():
            await asyncio.sleep(WATCH_INTERVAL)
            await asyncio.to_thread(rotate, Path(process.record.log))
            current = self.instance.subordinates
            moved = [
                p.worker_name
                for p in current
                if p.ready and p.worker_id in self.parts and self.parts[p.worker_id] != (p.rpc_pid, p.endpoint)
            ]
            if moved:
                return f"the RPC server on {', '.join(moved)} was restarted: {process.record.program} must reconnect"
            if (
                self.instance.state == S.UNREACHABLE
                and all(p.ready for p in current)
                and await self._answers(process)
                and not self.stopping
            ):
                await self._report(S.RUNNING, None, port=process.port, pid=process.pid)
        return None

    async def _wait_parts(self, head_port: int | None = None) -> InstancePublic:
        """Wait (reporting ``starting`` with what is missing) until every RPC part is ready; first
        report the cluster head on ``head_port`` when the server does not have it (the subordinates'
        parts join it: the server marks them not ready until they report again)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        said = None
        while True:
            if head_port is not None and not (self.instance.ray_head or "").endswith(f":{head_port}"):
                # again until the server has it: a report can fail (server away, a conflicting write)
                message = f"started the cluster head on port {head_port}"
                await self._report(S.STARTING, message, ray_head_port=head_port)
            missing = [p for p in self.instance.subordinates if not p.ready]
            if not missing:
                return self.instance
            why = "; ".join(f"{p.worker_name}: {p.message or 'starting its RPC server'}" for p in missing)
            if loop.time() > deadline:
                raise PrepareError(f"RPC servers not ready after {self.start_timeout:.0f}s ({why})")
            if why != said:
                await self._report(S.STARTING, f"waiting for RPC servers ({why})")
                said = why
            await asyncio.sleep(0.5)
            await self._fetch()

    async def _wait_healthy(self, process: EngineProcess) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        pause = 0.02  # small models load in tens of milliseconds: look often at first, then less
        while loop.time() < deadline:
            if not process.alive():
                return False
            if await self._answers(process) and await self._owns_port(process):
                return True
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.5)
        return False

    async def _answers(self, process: EngineProcess) -> bool:
        """Whether the engine's health endpoint says OK (200; llama-server answers 503 while it loads the model)."""
        url = f"http://{self.engine_host}:{process.port}{process.record.health_path}"
        try:
            async with httpx.AsyncClient(timeout=5, trust_env=False) as http:
                return (await http.get(url)).status_code == 200
        except httpx.HTTPError:
            return False

    @staticmethod
    async def _owns_port(process: EngineProcess) -> bool:
        """Whether the answer on the engine's port came from the engine itself: another process that
        holds the port (the engine then fails to bind it and exits) must not make it look healthy."""
        owner = await asyncio.to_thread(listens_on, process.pid, process.port)
        return owner is not False and process.alive()

    def _cleanup(self) -> None:
        if self.process is not None:
            forget(self.records, self.instance.id, "server")
            self.on_port_free(self.process.port)
            self.process = None

    async def _progress(self, percent: float) -> None:
        """A download advanced: report ``downloading`` with the percentage, at most once a second."""
        now = asyncio.get_running_loop().time()
        if percent < 100 and now - self._progress_at < PROGRESS_INTERVAL:
            return
        self._progress_at = now
        await self._report(S.DOWNLOADING, f"downloading the model file: {percent:.0f}%", download_progress=percent)

    # --- talking to the server ------------------------------------------------------------------
    async def _report(self, state: InstanceState, message: str | None, **fields: Any) -> None:
        """Move the instance; on a version conflict read it again and retry once (unless it is being stopped)."""
        for _ in range(2):
            body = InstanceTransition(
                expected_version=self.instance.version, state=state, state_message=message, **fields
            )
            try:
                self.update(await self.client.transition(self.instance.id, body))
                return
            except ServerRejected as exc:
                if exc.status_code != 409:
                    logger.error("instance %s: server refused %s: %s", self.instance.name, state.value, exc.detail)
                    return
                fresh = await self._fetch()
                if fresh is None or fresh.state == S.STOPPING:
                    self.stopping = fresh is not None or self.stopping
                    return
            except ServerUnavailable as exc:
                logger.warning("instance %s: could not report %s: %s", self.instance.name, state.value, exc)
                return

    async def _fetch(self) -> InstancePublic | None:
        try:
            fresh = await self.client.instance(self.instance.id)
        except (ServerRejected, ServerUnavailable):
            return None
        self.update(fresh)
        return fresh

    async def _release(self, reason: str) -> None:
        logger.warning("instance %s: releasing it: %s", self.instance.name, reason)
        try:
            await self.client.release(self.instance.id, self.instance.version, reason, failed=True)
        except (ServerRejected, ServerUnavailable) as exc:
            logger.error("instance %s: could not release it: %s", self.instance.name, exc)
