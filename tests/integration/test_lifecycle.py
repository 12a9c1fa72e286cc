"""The one guarded transition: compare-and-swap on (id, version), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from gpufleet.common.errors import InvalidTransition, NotFound
from gpufleet.db.migrate import upgrade
from gpufleet.db.session import Database
from gpufleet.db.tables import Model, ModelInstance
from gpufleet.schemas.states import InstanceState
from gpufleet.server import lifecycle

S = InstanceState


async def _instance(db: Database) -> int:
    async with db.transaction() as session:
        model = Model(
            name="m",
            source="local_path",
            local_path="/m.gguf",
            backend_parameters=[],
            replicas=1,
            placement_strategy="spread",
            worker_selector={},
        )
        session.add(model)
        await session.flush()
        row = ModelInstance(
            name="m-1",
            model_id=model.id,
            model_name="m",
            state="pending",
            device_ids=[],
            subordinates=[],
            restart_count=0,
            version=0,
        )
        session.add(row)
        await session.flush()
        return row.id


async def _move(db: Database, instance_id: int, version: int, to: InstanceState, actor: str) -> str:
    async with db.transaction() as session:
        await lifecycle.transition(session, instance_id, expected_version=version, to=to, message=actor)
    return actor


async def test_two_concurrent_transitions_exactly_one_wins(database_url: str) -> None:
    # Two Database objects = two connection pools, as two server replicas would have.
    first, second = Database(database_url), Database(database_url)
    try:
        await upgrade(first)
        instance_id = await _instance(first)
        for round_ in range(5):
            async with first.read() as session:
                version = (await session.get(ModelInstance, instance_id)).version  # type: ignore[union-attr]
            target = S.SCHEDULED if round_ % 2 == 0 else S.PENDING
            results = await asyncio.gather(
                _move(first, instance_id, version, target, "first"),
                _move(second, instance_id, version, target, "second"),
                return_exceptions=True,
            )
            winners = [r for r in results if isinstance(r, str)]
            losers = [r for r in results if isinstance(r, InvalidTransition)]
            assert len(winners) == 1 and len(losers) == 1, results
            assert "changed since version" in str(losers[0])
            async with first.read() as session:
                row = await session.get(ModelInstance, instance_id)
                assert row is not None
                assert (row.state, row.version, row.state_message) == (target.value, version + 1, winners[0])
    finally:
        await first.dispose()
        await second.dispose()


async def test_disallowed_transition_and_missing_instance(database_url: str) -> None:
    db = Database(database_url)
    try:
        await upgrade(db)
        instance_id = await _instance(db)
        with pytest.raises(InvalidTransition, match="cannot go from pending to running"):
            await _move(db, instance_id, 0, S.RUNNING, "x")
        with pytest.raises(NotFound):
            await _move(db, 424242, 0, S.SCHEDULED, "x")
        # Staying in a state (progress updates) is allowed and bumps the version.
        await _move(db, instance_id, 0, S.PENDING, "still waiting")
        async with db.read() as session:
            row = await session.get(ModelInstance, instance_id)
            assert row is not None and row.version == 1
    finally:
        await db.dispose()
