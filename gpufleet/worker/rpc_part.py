"""This worker's part in another worker's distributed instance, for that instance only: llama.cpp's
ggml-rpc-server, or for vLLM a Ray node joining the instance's Ray head.

Started on demand when the instance is placed with this worker as a subordinate, on the devices
it was given (its CPU, or GPUs pinned with CUDA_VISIBLE_DEVICES and the like), on ports from
``--rpc-server-port-range``; reported to the server (its first port and pid, or why there is none);
stopped when the instance stops or goes away, then what it left running is ended
(``Engine.part_stopped``). It restarts with back-off when it exits. Subordinates need no model file
for llama.cpp (the main worker's llama-server sends the weights over RPC).

A part that joins a cluster head (vLLM's Ray node) waits until the main worker reported the
instance's ``ray_head`` (its planner raises ``NoHeadYet``), and is restarted when that head changes
(the main worker started a new one).

The report is repeated whenever the server's record of this part differs from the truth here
(e.g. the server marked it lost while this worker was cut off, and the worker is back).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gpufleet.schemas.instances import InstancePublic, RpcServerReport, Subordinate
from gpufleet.worker.client import ServerClient, ServerRejected, ServerUnavailable
from gpufleet.worker.engines.process import STOP_DEADLINE, EngineProcess, forget, launch, tail
from gpufleet.worker.ports import accepts
from gpufleet.worker.runner import MAX_BACKOFF, WATCH_INTERVAL, PrepareError

logger = logging.getLogger(__name__)

ROLE = "rpc"
LISTEN_TIMEOUT = 60.0  # seconds for a new part to accept connections (a Ray node takes several)


@dataclass(frozen=True)
class PartLaunch:
    command: list[str]
    env: dict[str, str]
    ports: tuple[int, ...]  # taken from the worker's RPC range; the first listens once it is ready
    program: str  # what the process is called in messages, e.g. ggml-rpc-server
    head: str | None = None  # the cluster head it joins (vLLM's Ray head), if any
    # ends what the process left running once it is stopped (``Engine.part_stopped``)
    after_stop: Callable[[Sequence[str]], None] | None = None

    @property
    def port(self) -> int:
        return self.ports[0]


class NoHeadYet(PrepareError):
    """The part joins a cluster head (vLLM's Ray head) which the main worker has not reported yet."""


# Builds the RPC server's command for this worker's part of an instance. Raises PrepareError
# (NoHeadYet: try again shortly, nothing failed).
RpcPlanner = Callable[[InstancePublic, Subordinate], Awaitable[PartLaunch]]


class RpcPart:
    def __init__(
        self,
        instance: InstancePublic,
        worker_id: int,
        client: ServerClient,
        planner: RpcPlanner,
        records: Path,
        log: Path,
        on_port_free: Callable[[int], None],
        *,
        connect_host: str,
        backoff: float,
        adopted: EngineProcess | None = None,
    ) -> None:
        self.instance = instance
        self.worker_id = worker_id
        self.client = client
        self.planner = planner
        self.records = records
        self.log = log
        self.on_port_free = on_port_free
        self.connect_host = connect_host
        self.backoff = backoff
        self.process = adopted
        self.ports: tuple[int, ...] = (adopted.port,) if adopted is not None else ()
        self.joined: str | None = None  # the cluster head the running process joined (None: it joins none)
        self.after_stop: Callable[[Sequence[str]], None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.stopping = False

    def update(self, instance: InstancePublic) -> None:
        if instance.version >= self.instance.version:
            self.instance = instance

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"rpc-{self.instance.name}")

    async def stop(self, deadline: float = STOP_DEADLINE) -> None:
        """Stop the RPC server (SIGTERM, ``deadline``, SIGKILL) and the loop watching it."""
        self.stopping = True
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.process is not None:
            await self._end(deadline)

    async def _end(self, deadline: float = STOP_DEADLINE) -> None:
        """Stop the process, end what it left, forget it and free its ports."""
        assert self.process is not None
        await self.process.stop(deadline)
        if self.after_stop is not None:
            await asyncio.to_thread(self.after_stop, self.process.record.command)
        self._cleanup()

    @property
    def mine(self) -> Subordinate | None:
        return next((p for p in self.instance.subordinates if p.worker_id == self.worker_id), None)

    async def _run(self) -> None:
        failures = 0
        while not self.stopping:
            part = self.mine
            if part is None:
                return
            head = self.instance.ray_head
            if self.joined is not None and self.joined != head and self.process is not None:
                logger.info("instance %s: the cluster head is now %s: joining it anew", self.instance.name, head)
                await self._end()
            if self.process is None or not self.process.alive():
                try:
                    message = await self._start(part)
                except NoHeadYet:
                    await asyncio.sleep(WATCH_INTERVAL)  # the main worker has not reported its head yet
                    continue
                if message is not None:
                    failures += 1
                    logger.warning("instance %s: %s", self.instance.name, message.splitlines()[0])
                    await self._report(None, None, message)
                    await asyncio.sleep(min(self.backoff * 2 ** (failures - 1), MAX_BACKOFF))
                    continue
                failures = 0
            assert self.process is not None
            current = self.joined is None or self.joined == self.instance.ray_head  # not a head left behind
            if current and (part.rpc_port, part.rpc_pid, part.message) != (self.process.port, self.process.pid, None):
                await self._report(self.process.port, self.process.pid, None)
            await asyncio.sleep(WATCH_INTERVAL)
            if not self.process.alive():
                message = f"{self.process.record.program} exited:\n{tail(Path(self.process.record.log))}"
                await self._end()
                await self._report(None, None, message)

    async def _start(self, part: Subordinate) -> str | None:
        """Start the RPC server and wait until it listens; the reason when it cannot."""
        try:
            plan = await self.planner(self.instance, part)
        except NoHeadYet:
            raise
        except PrepareError as exc:
            return f"cannot start the RPC server: {exc}"
        port = plan.port
        process = launch(
            self.records, self.instance.id, ROLE, plan.command, port, self.log, plan.env, program=plan.program
        )
        self.process, self.ports, self.joined, self.after_stop = process, plan.ports, plan.head, plan.after_stop
        logger.info("instance %s: started %s pid %d on port %d", self.instance.name, plan.program, process.pid, port)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LISTEN_TIMEOUT
        while loop.time() < deadline and process.alive():
            if await accepts(self.connect_host, port):
                return None
            await asyncio.sleep(0.1)
        code = process.exit_code()
        await self._end()
        why = "did not listen in time" if code is None else f"exited with code {code}"
        return f"{plan.program} {why}:\n{tail(self.log)}"

    def _cleanup(self) -> None:
        if self.process is not None:
            forget(self.records, self.instance.id, ROLE)
            for port in self.ports:
                self.on_port_free(port)
            self.process, self.ports, self.joined = None, (), None

    async def _report(self, port: int | None, pid: int | None, message: str | None) -> None:
        body = RpcServerReport(rpc_port=port, rpc_pid=pid, message=message[-4000:] if message else None)
        try:
            self.update(await self.client.report_rpc_server(self.instance.id, body))
        except ServerRejected as exc:
            logger.info("instance %s: server refused the RPC report: %s", self.instance.name, exc.detail)
        except ServerUnavailable as exc:
            logger.warning("instance %s: could not report the RPC server: %s", self.instance.name, exc)
