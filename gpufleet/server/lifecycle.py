"""The instance lifecycle: which state changes are allowed, and the one function that makes them.

::

    pending ──► scheduled ──► downloading ──► starting ──► running
       ▲            │              │              │           │
       └────────────┴──── error ◄──┴──────────────┴───────────┤
                      unreachable (worker lost) ◄─────────────┘
    any placed state ──► stopping ──► (row deleted by the worker)

Invariant: ``state`` and ``version`` of a ``model_instances`` row change only in
``transition()``. It is a compare-and-swap: the UPDATE matches on
(id, expected version, a state from which the target is allowed), so of two
actors that read the same version exactly one succeeds; the other gets
``InvalidTransition`` and must re-read. Staying in the same state (to update
progress or a message) is allowed and still bumps the version.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gpufleet.common.errors import InvalidTransition, NotFound
from gpufleet.db.tables import ModelInstance
from gpufleet.schemas.states import InstanceState

S = InstanceState

# target state -> the states it may be entered from (besides itself)
ALLOWED_FROM: dict[InstanceState, frozenset[InstanceState]] = {
    # back to pending: released by its worker, or its worker was deleted (even while running)
    S.PENDING: frozenset({S.SCHEDULED, S.DOWNLOADING, S.STARTING, S.RUNNING, S.ERROR, S.UNREACHABLE}),
    S.SCHEDULED: frozenset({S.PENDING, S.ERROR}),
    S.DOWNLOADING: frozenset({S.SCHEDULED, S.ERROR}),
    S.STARTING: frozenset({S.SCHEDULED, S.DOWNLOADING, S.RUNNING, S.ERROR, S.UNREACHABLE}),
    S.RUNNING: frozenset({S.STARTING, S.UNREACHABLE}),
    S.ERROR: frozenset({S.PENDING, S.SCHEDULED, S.DOWNLOADING, S.STARTING, S.RUNNING, S.UNREACHABLE}),
    S.UNREACHABLE: frozenset({S.SCHEDULED, S.DOWNLOADING, S.STARTING, S.RUNNING, S.ERROR}),
    S.STOPPING: frozenset({S.SCHEDULED, S.DOWNLOADING, S.STARTING, S.RUNNING, S.ERROR, S.UNREACHABLE}),
}

# Fields a transition may set besides state and message.
TRANSITION_FIELDS = frozenset(
    {
        "worker_id",
        "worker_name",
        "device_ids",
        "port",
        "pid",
        "claim",
        "subordinates",
        "restart_count",
        "download_progress",
        "engine_command",
        "ray_head",
    }
)


def is_allowed(source: InstanceState, target: InstanceState) -> bool:
    return source == target or source in ALLOWED_FROM[target]


async def transition(
    session: AsyncSession,
    instance_id: int,
    *,
    expected_version: int,
    to: InstanceState,
    message: str | None,
    **fields: Any,
) -> ModelInstance:
    """Move one instance to ``to``; returns the updated row.

    Raises ``NotFound`` if the instance is gone and ``InvalidTransition`` if it
    moved since ``expected_version`` or ``to`` is not allowed from its state.
    """
    unknown = set(fields) - TRANSITION_FIELDS
    if unknown:
        raise ValueError(f"transition() cannot set {sorted(unknown)}")
    sources = [s.value for s in ALLOWED_FROM[to] | {to}]
    result = await session.execute(
        update(ModelInstance)
        .where(
            ModelInstance.id == instance_id,
            ModelInstance.version == expected_version,
            ModelInstance.state.in_(sources),
        )
        .values(state=to.value, state_message=message, version=ModelInstance.version + 1, **fields)
        .execution_options(synchronize_session=False)
    )
    row = (
        await session.execute(
            select(ModelInstance).where(ModelInstance.id == instance_id).execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"instance {instance_id} does not exist (it may have been deleted)")
    if result.rowcount != 1:  # type: ignore[attr-defined]
        if row.version != expected_version:
            raise InvalidTransition(
                f"instance {row.name} changed since version {expected_version} "
                f"(now version {row.version}, state {row.state}); read it again"
            )
        raise InvalidTransition(f"instance {row.name} cannot go from {row.state} to {to.value}")
    return row
