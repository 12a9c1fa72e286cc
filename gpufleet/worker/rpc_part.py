"""This worker's part in another worker's distributed instance: one ggml-rpc-server, for that instance only.

Started on demand when the instance is placed with this worker as a subordinate, on the devices
it was given (its CPU, or GPUs pinned with CUDA_VISIBLE_DEVICES and the like), on a port from
``--rpc-server-port-range``; reported to the server (port and pid, or why there is none); stopped
when the instance stops or goes away. It restarts with back-off when it exits. Subordinates need
no model file: the main worker's llama-server sends the weights over RPC.

The report is repeated whenever the server's record of this part differs from the truth here
(e.g. the server marked it lost while this worker was cut off, and the worker is back).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from gpufleet.schemas.instances import InstancePublic, RpcServerReport, Subordinate
from gpufleet.worker.client import ServerClient, ServerRejected, ServerUnavailable
from gpufleet.worker.engines.process import STOP_DEADLINE, EngineProcess, forget, launch, tail
from gpufleet.worker.runner import MAX_BACKOFF, WATCH_INTERVAL, PrepareError

logger = logging.getLogger(__name__)

ROLE = "rpc"
LISTEN_TIMEOUT = 30.0  # seconds for a new ggml-rpc-server to accept connections


@dataclass(frozen=True)
class PartLaunch:
    command: list[str]
    env: dict[str, str]
    port: int
    program: str  # what the process is called in messages, e.g. ggml-rpc-server


# Builds the RPC server's command for this worker's part of an instance. Raises PrepareError.
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
            await self.process.stop(deadline)
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
            if self.process is None or not self.process.alive():
                message = await self._start(part)
                if message is not None:
                    failures += 1
                    logger.warning("instance %s: %s", self.instance.name, message.splitlines()[0])
                    await self._report(None, None, message)
                    await asyncio.sleep(min(self.backoff * 2 ** (failures - 1), MAX_BACKOFF))
                    continue
                failures = 0
            assert self.process is not None
            if (part.rpc_port, part.rpc_pid, part.message) != (self.process.port, self.process.pid, None):
                await self._report(self.process.port, self.process.pid, None)
            await asyncio.sleep(WATCH_INTERVAL)
            if not self.process.alive():
                message = f"{self.process.record.program} exited:\n{tail(Path(self.process.record.log))}"
                self._cleanup()
                await self._report(None, None, message)

    async def _start(self, part: Subordinate) -> str | None:
        """Start the RPC server and wait until it listens; the reason when it cannot."""
        try:
            plan = await self.planner(self.instance, part)
        except PrepareError as exc:
            return f"cannot start the RPC server: {exc}"
        port = plan.port
        process = launch(
            self.records, self.instance.id, ROLE, plan.command, port, self.log, plan.env, program=plan.program
        )
        self.process = process
        logger.info("instance %s: started %s pid %d on port %d", self.instance.name, plan.program, process.pid, port)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LISTEN_TIMEOUT
        while loop.time() < deadline and process.alive():
            if await self._listens(port):
                return None
            await asyncio.sleep(0.1)
        code = process.exit_code()
        await process.stop()
        self._cleanup()
        why = "did not listen in time" if code is None else f"exited with code {code}"
        return f"{plan.program} {why}:\n{tail(self.log)}"

    async def _listens(self, port: int) -> bool:
        """One TCP connection (closed at once; the server drops it and waits for the next client)."""
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(self.connect_host, port), 2)
        except (OSError, TimeoutError):
            return False
        writer.close()
        await writer.wait_closed()
        return True

    def _cleanup(self) -> None:
        if self.process is not None:
            forget(self.records, self.instance.id, ROLE)
            self.on_port_free(self.process.port)
            self.process = None

    async def _report(self, port: int | None, pid: int | None, message: str | None) -> None:
        body = RpcServerReport(rpc_port=port, rpc_pid=pid, message=message[-4000:] if message else None)
        try:
            self.update(await self.client.report_rpc_server(self.instance.id, body))
        except ServerRejected as exc:
            logger.info("instance %s: server refused the RPC report: %s", self.instance.name, exc.detail)
        except ServerUnavailable as exc:
            logger.warning("instance %s: could not report the RPC server: %s", self.instance.name, exc)
