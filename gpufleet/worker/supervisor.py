"""The worker's side of the instance lifecycle: make local reality match the desired instances.

The agent feeds every instance event of this worker's watch stream into
``apply()``; ``resync()`` runs after each (re)connection with the full listing.
Decisions, per instance where this worker is the main worker:

- ``stopping``: stop the engine (if one runs) and release the instance, which
  deletes it on the server.
- ``scheduled`` on a simulated device (``--device-inventory``): ``error`` — an
  engine never starts on a device that does not exist.
- ``scheduled`` otherwise: start the backend's engine from ``ENGINES``; with no
  engine for that backend on this worker, ``error`` saying so.
- ``unreachable`` with our engine still running: back to ``running``.
- ``downloading``/``starting``/``running``/``unreachable`` with no engine process
  of ours behind it (e.g. after a restart): ``error`` saying the engine is gone.

``reconcile_all()`` runs after every heartbeat, so a report that failed (server
down) is retried without waiting for a new event.

Every change goes through the server's transition endpoint with the version we
saw (compare-and-swap); a 409 means the instance moved meanwhile and a newer
event is on its way, so it is not retried.
"""

from __future__ import annotations

import asyncio
import logging

from gpufleet.schemas.events import Event, EventKind, EventType
from gpufleet.schemas.instances import InstancePublic, InstanceTransition
from gpufleet.schemas.states import InstanceState
from gpufleet.worker.client import ServerClient, ServerRejected, ServerUnavailable
from gpufleet.worker.engines import DEFAULT_BACKEND, ENGINES

logger = logging.getLogger(__name__)

S = InstanceState
LIVE_STATES = (S.DOWNLOADING, S.STARTING, S.RUNNING, S.UNREACHABLE)


class Supervisor:
    def __init__(self, client: ServerClient, simulated_device_ids: set[str]) -> None:
        self.client = client
        self.simulated_device_ids = simulated_device_ids
        self.worker_id: int | None = None
        self.desired: dict[int, InstancePublic] = {}
        self.engines: dict[int, tuple[str, int]] = {}  # instance id -> (backend, pid) of engines we started
        self._lock = asyncio.Lock()

    async def apply(self, event: Event) -> None:
        if event.kind != EventKind.INSTANCES or event.id is None:
            return
        async with self._lock:
            if event.type == EventType.DELETED:
                self.desired.pop(event.id, None)
                await self._stop_engine(event.id)
                return
            if event.object is None:
                return
            instance = InstancePublic.model_validate(event.object)
            self.desired[instance.id] = instance
            await self._converge(instance)

    async def reconcile_all(self) -> None:
        """Converge every desired instance again (level-triggered safety net: retries failed reports)."""
        async with self._lock:
            for instance in list(self.desired.values()):
                await self._converge(instance)

    async def resync(self, listed: set[int]) -> None:
        """After a (re)connection: forget instances the listing no longer has."""
        async with self._lock:
            for instance_id in set(self.desired) - listed:
                self.desired.pop(instance_id, None)
                await self._stop_engine(instance_id)

    async def _converge(self, instance: InstancePublic) -> None:
        if instance.worker_id != self.worker_id:
            return  # a subordinate part: RPC servers arrive with the engine support
        try:
            if instance.state == S.STOPPING:
                await self._stop_engine(instance.id)
                await self.client.release(instance.id, instance.version, "stopped by the worker")
            elif instance.state == S.SCHEDULED:
                await self._start(instance)
            elif instance.state == S.UNREACHABLE and instance.id in self.engines:
                await self._report(instance, S.RUNNING, "the worker is back and its engine kept running")
            elif instance.state in LIVE_STATES and instance.id not in self.engines:
                await self._fail(
                    instance,
                    "the engine of this instance is not running on the worker "
                    "(the worker restarted or the engine exited)",
                )
        except ServerRejected as exc:
            if exc.status_code in (404, 409):
                logger.info("instance %s moved on the server meanwhile: %s", instance.name, exc.detail)
            else:
                logger.error("server refused an update of instance %s: %s", instance.name, exc)
        except ServerUnavailable as exc:
            logger.warning("could not report instance %s: %s (will retry)", instance.name, exc)

    async def _start(self, instance: InstancePublic) -> None:
        simulated = [d for d in instance.device_ids if d in self.simulated_device_ids]
        if simulated:
            await self._fail(
                instance,
                f"cannot start an engine on simulated device(s) {', '.join(simulated)}: "
                "this worker runs with --device-inventory, for capacity planning only",
            )
            return
        backend = (instance.claim or {}).get("backend") or DEFAULT_BACKEND
        engine = ENGINES.get(backend)
        if engine is None:
            await self._fail(instance, f"no {backend} engine is available on this worker")
            return
        self.engines[instance.id] = (backend, await engine.start(instance))

    async def _fail(self, instance: InstancePublic, message: str) -> None:
        logger.warning("instance %s: %s", instance.name, message)
        await self._report(instance, S.ERROR, message)

    async def _report(self, instance: InstancePublic, state: InstanceState, message: str) -> None:
        updated = await self.client.transition(
            instance.id, InstanceTransition(expected_version=instance.version, state=state, state_message=message)
        )
        self.desired[instance.id] = updated

    async def _stop_engine(self, instance_id: int) -> None:
        running = self.engines.pop(instance_id, None)
        if running is not None:
            await ENGINES[running[0]].stop(instance_id)
