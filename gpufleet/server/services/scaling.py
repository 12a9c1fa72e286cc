"""Changes of a deployment's ``replicas`` that gpufleet makes on its own, each with its event.

Only deployments with replica bounds (``min_replicas``/``max_replicas``) are scaled here, and
only inside their bounds. The deployments controller then creates or stops instances as for a
change by hand; ``scaled_at`` starts the autoscaler's cool-down.

- ``request_load``: a ``/v1`` request found no instance: 0 → 1 (any server's gateway may ask;
  idempotent, so a burst of requests or two servers asking at once load one instance).
- ``scale``: the autoscaler's decisions (up on queueing, down or to 0 when idle).
- ``evict``: the scheduler stops one instance of an on-demand deployment to make room; its target
  drops by one in the same transaction, so nothing re-creates the instance it just stopped.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from gpufleet.common.clock import utcnow
from gpufleet.common.errors import InvalidTransition
from gpufleet.db.session import Database
from gpufleet.db.tables import Model, ModelInstance
from gpufleet.schemas.model_events import ModelEventKind
from gpufleet.schemas.states import InstanceState
from gpufleet.server.services import instances as instance_service
from gpufleet.server.services import model_events
from gpufleet.server.services.models import publish_modified

# Told of each step gpufleet takes on its own: (model name, kind); the metrics count them.
Scaled = Callable[[str, ModelEventKind], None]


def has_bounds(model: Model) -> bool:
    return model.min_replicas is not None and model.max_replicas is not None


async def request_load(db: Database, model_id: int, why: str) -> bool:
    """Raise a bounded deployment at 0 replicas to 1 (``max_replicas`` ≥ 1); True if this call did."""
    async with db.transaction() as session:
        model = await session.get(Model, model_id, with_for_update=True)
        if model is None or not has_bounds(model) or model.replicas > 0 or (model.max_replicas or 0) < 1:
            return False
        await _set(session, model, 1, ModelEventKind.LOAD, why)
        return True


async def scale(db: Database, model_id: int, expected: int, replicas: int, kind: ModelEventKind, why: str) -> bool:
    """Set ``replicas`` if it is still ``expected`` (a compare-and-swap: a change by hand or another
    decision since the caller read it wins) and inside the bounds; True if it was set."""
    async with db.transaction() as session:
        model = await session.get(Model, model_id, with_for_update=True)
        if model is None or not has_bounds(model) or model.replicas != expected:
            return False
        if not (model.min_replicas or 0) <= replicas <= (model.max_replicas or 0):
            return False
        await _set(session, model, replicas, kind, why)
        return True


async def evict(session: AsyncSession, victim: ModelInstance, message: str, event: str) -> None:
    """Stop ``victim`` (running) to make room, one replica fewer for its deployment, in ``session``.

    ``message`` goes on the instance (after "stopping: "), ``event`` in its deployment's events.
    InvalidTransition if it is no longer running (it moved since the decision)."""
    if victim.model_id is None:
        raise InvalidTransition(f"{victim.name} has no deployment any more")
    model = await session.get(Model, victim.model_id, with_for_update=True)
    if model is None or model.min_replicas != 0 or model.replicas < 1:
        raise InvalidTransition(f"{victim.name}'s deployment is no longer on demand")
    await instance_service.transition_and_publish(session, victim, InstanceState.STOPPING, f"stopping: {message}")
    await _set(session, model, model.replicas - 1, ModelEventKind.EVICTED, event)


async def _set(session: AsyncSession, model: Model, replicas: int, kind: ModelEventKind, why: str) -> None:
    model.replicas = replicas
    model.scaled_at = utcnow()
    await model_events.record(session, model.id, kind, f"{why} (replicas now {replicas})")
    await publish_modified(session, model)
