"""Between the database and the eviction planner (``scheduler/eviction.py``): who could be evicted,
and committing an eviction.

Candidates are the running instances of on-demand deployments (``min_replicas`` 0) other than the
pending instance's own. A pending instance of a deployment that is not on demand may evict only
lower priorities; an on-demand one also equal priorities, least recently used first (two on-demand
models swapping places on a worker that holds one). An instance with requests in flight or waiting,
on any server, is never a candidate.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gpufleet.common.errors import InvalidTransition
from gpufleet.common.resources import held_by_instance, total_by_device
from gpufleet.db.tables import Model, ModelInstance
from gpufleet.scheduler.eviction import Candidate
from gpufleet.schemas.model_events import ModelEventKind
from gpufleet.schemas.states import InstanceState
from gpufleet.server.services import model_events, scaling
from gpufleet.server.services.demand import Load


async def load_room(
    session: AsyncSession, loads: Mapping[int, Load]
) -> tuple[list[Candidate], list[Mapping[str, int]]]:
    """Every running instance of an on-demand deployment (busy ones marked), and the claims of those stopping."""
    rows = (
        await session.execute(
            select(ModelInstance, Model.name, Model.priority, Model.last_request_at)
            .join(Model, Model.id == ModelInstance.model_id)
            .where(Model.min_replicas == 0, ModelInstance.state == InstanceState.RUNNING.value)
            .order_by(ModelInstance.id)
        )
    ).all()
    candidates = [
        Candidate(
            instance_id=row.id,
            instance_name=row.name,
            model_id=row.model_id or 0,
            model_name=name,
            priority=priority,
            last_request_at=last,
            busy=loads.get(row.model_id or 0, Load()).any,
            held=_held(row),
        )
        for row, name, priority, last in rows
    ]
    stopping = (
        (
            await session.execute(
                select(ModelInstance).where(
                    ModelInstance.state == InstanceState.STOPPING.value, ModelInstance.worker_id.is_not(None)
                )
            )
        )
        .scalars()
        .all()
    )
    return candidates, [_held(row) for row in stopping]


def eligible(candidates: list[Candidate], model: Model) -> list[Candidate]:
    """The candidates ``model``'s pending instance may consider (module docstring)."""
    own = [c for c in candidates if c.model_id != model.id]
    if model.min_replicas == 0:
        return own
    return [c for c in own if c.priority < model.priority]


async def commit(
    session: AsyncSession, pending: ModelInstance, model: Model, victims: list[tuple[Candidate, str]]
) -> None:
    """Stop each victim (message given) and record both sides; InvalidTransition if one moved."""
    for victim, message in victims:
        row = await session.get(ModelInstance, victim.instance_id, with_for_update=True)
        if row is None or row.state != InstanceState.RUNNING:
            raise InvalidTransition(f"{victim.instance_name} is no longer running")
        await scaling.evict(session, row, message, message)
    names = ", ".join(f"{v.instance_name} (model {v.model_name})" for v, _ in victims)
    await model_events.record(
        session, model.id, ModelEventKind.EVICT, f"{pending.name} could not be placed: evicting {names} to make room"
    )


def _held(row: ModelInstance) -> dict[str, int]:
    return total_by_device(held_by_instance(row.worker_name, row.claim, row.subordinates))
