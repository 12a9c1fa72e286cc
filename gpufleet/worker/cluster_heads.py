"""The cluster heads this worker runs as the main worker of distributed instances (vLLM: Ray heads).

An engine that runs across workers on a cluster of its own (``Engine.cluster_head``: vLLM on Ray)
needs, before its server starts, a head on the main worker which the subordinates' parts join::

    main worker:  ensure(instance) → the head listens on a port of --rpc-server-port-range
                  → the runner reports it (``ray_head``) → subordinates start their nodes and report
                  → the runner starts the server (vLLM, RAY_ADDRESS = the head)

Invariants:

- one head per instance, started by ``ensure`` when there is none alive (the first start, or after
  the head died: other ports than the dead one's, so the subordinates see a new ``ray_head`` and
  join it anew);
- a head lives as long as the instance is this worker's: ``stop`` ends it (and what it left
  running, ``Engine.part_stopped``) with the instance's engine, and frees its ports;
- heads are never adopted: one left by an earlier run of the worker is ended when the worker
  starts (``end_cluster_processes``), with the instance's server, which cannot go on without it:
  the runner starts both again, the head on other ports than the one the server recorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from gpufleet.common.errors import GpufleetError
from gpufleet.worker.engines.base import Engine, PartRequest
from gpufleet.worker.engines.process import STOP_DEADLINE, EngineProcess, forget, launch, tail
from gpufleet.worker.ports import PortPool, accepts
from gpufleet.worker.runner import PrepareError

logger = logging.getLogger(__name__)

ROLE = "cluster-head"
PART_ROLE = "rpc"  # a subordinate's part (``rpc_part.ROLE``)
SERVER_ROLE = "server"  # an instance's server (the runner's record)
LISTEN_TIMEOUT = 60.0  # seconds for a new head to accept connections on its first port


@dataclass
class Head:
    process: EngineProcess
    ports: list[int]
    engine: Engine

    @property
    def port(self) -> int:
        return self.ports[0]


class ClusterHeads:
    def __init__(self, records: Path, logs: Path, pool: PortPool, *, host: str, connect_host: str) -> None:
        self.records = records
        self.logs = logs
        self.pool = pool
        self.host = host  # the address the head listens on and other workers reach
        self.connect_host = connect_host  # where this worker reaches it
        self.heads: dict[int, Head] = {}

    async def ensure(
        self,
        instance_id: int,
        name: str,
        worker_id: int,
        engine: Engine,
        device_ids: Collection[str],
        threads: int,
        previous: str | None = None,
    ) -> int:
        """The port of the instance's head, started now if none is alive, never on the port of
        ``previous`` (the head the server has recorded: one that is gone, e.g. ended when this worker
        restarted). Raises ``PrepareError``."""
        head = self.heads.get(instance_id)
        if head is not None and head.process.alive():
            return head.port
        avoid: list[int] = []
        if previous and previous.rsplit(":", 1)[-1].isdigit():
            avoid.append(int(previous.rsplit(":", 1)[-1]))
        if head is not None:
            logger.warning("instance %s: its %s head exited: starting another", name, engine.part_program)
            await self.stop(instance_id)
            avoid += head.ports  # a new address, so that the subordinates see the head change and rejoin
        log = self.logs / f"{name}-head.log"

        def plan() -> tuple[list[int], list[str], dict[str, str]]:
            ports: list[int] = []
            try:
                engine.ensure_installed()
                ports = self.pool.acquire_many(engine.part_ports(head=True, device_ids=list(device_ids)), avoid)
                request = PartRequest(instance_id, worker_id, self.host, ports, list(device_ids), threads)
                launch_ = engine.part_launch(request)
            except (GpufleetError, OSError, ValueError) as exc:
                for port in ports:
                    self.pool.release(port)
                raise PrepareError(f"cannot start the {engine.part_program} head: {exc}") from exc
            return ports, launch_.command, launch_.env

        ports, command, env = await asyncio.to_thread(plan)
        process = launch(self.records, instance_id, ROLE, command, ports[0], log, env, program=engine.part_program)
        self.heads[instance_id] = Head(process, ports, engine)
        logger.info(
            "instance %s: started the %s head pid %d on port %d", name, engine.part_program, process.pid, ports[0]
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LISTEN_TIMEOUT
        while loop.time() < deadline and process.alive():
            if await accepts(self.connect_host, ports[0]):
                return ports[0]
            await asyncio.sleep(0.2)
        code = process.exit_code()
        await self.stop(instance_id)
        why = "did not listen in time" if code is None else f"exited with code {code}"
        raise PrepareError(f"the {engine.part_program} head {why}:\n{tail(log)}")

    async def stop(self, instance_id: int, deadline: float = STOP_DEADLINE) -> None:
        """End the instance's head and what it left running; free its ports. Safe when it has none."""
        head = self.heads.get(instance_id)
        if head is None:
            return
        await head.process.stop(deadline)
        await asyncio.to_thread(head.engine.part_stopped, head.process.record.command)
        forget(self.records, instance_id, ROLE)
        for port in head.ports:
            self.pool.release(port)
        if self.heads.get(instance_id) is head:
            del self.heads[instance_id]

    async def stop_all(self, deadline: float = STOP_DEADLINE) -> None:
        await asyncio.gather(*(self.stop(instance_id, deadline) for instance_id in list(self.heads)))

    def kill_all(self) -> None:
        """SIGKILL every head now (stopping at once); their records go."""
        for instance_id, head in list(self.heads.items()):
            head.process.kill()
            forget(self.records, instance_id, ROLE)


def end_cluster_processes(
    found: list[EngineProcess], engines: Mapping[str, Engine], records: Path
) -> list[EngineProcess]:
    """Of the engines an earlier run left, end those of a cluster (heads, and parts of an engine with a
    head: a Ray node holds ports its record does not list); the rest, which may be adopted."""
    clustered = {e.part_program for e in engines.values() if e.cluster_head}
    by_program = {e.part_program: e for e in engines.values()}
    headless = {p.record.instance_id for p in found if p.record.role == ROLE}  # their servers go too
    kept = []
    for process in found:
        record = process.record
        if record.role == SERVER_ROLE and record.instance_id in headless:
            logger.info("ending the server of instance %d: its cluster head is not adopted", record.instance_id)
            process.kill()
            forget(records, record.instance_id, record.role)
        elif record.role == ROLE or (record.role == PART_ROLE and record.program in clustered):
            logger.info(
                "ending the %s of instance %d left by an earlier run: not adopted", record.program, record.instance_id
            )
            process.kill()
            engine = by_program.get(record.program)
            if engine is not None:
                engine.part_stopped(record.command)
            forget(records, record.instance_id, record.role)
        else:
            kept.append(process)
    return kept
