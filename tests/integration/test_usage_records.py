"""Gateway usage written to the database and read back, on SQLite and PostgreSQL: sums add up over
several flushes (one upsert per row), and a key's tokens today count what is stored and pending."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gpufleet.db.migrate import upgrade
from gpufleet.db.session import Database
from gpufleet.schemas.usage import UsageGroup
from gpufleet.server.gateway.usage import UsageRecorder
from gpufleet.server.principal import Principal, PrincipalKind
from gpufleet.server.services.usage import usage
from tests.support.server import running_server

ADMIN = Principal(kind=PrincipalKind.ADMIN, authenticated_by="test", user_id=1)


class Day:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)

    def __call__(self) -> float:
        return self.now.timestamp()


async def test_usage_adds_up_across_flushes_and_days(database_url: str) -> None:
    db = Database(database_url)
    try:
        await upgrade(db)
        clock = Day()
        recorder = UsageRecorder(db, clock)
        recorder.record(1, 7, "m1", prompt=10, completion=5)
        recorder.record(1, 7, "m1", prompt=1, completion=1)
        recorder.record(2, None, "m2", prompt=3, completion=0)  # a session token: no key
        await recorder.flush()
        recorder.record(1, 7, "m1", prompt=4, completion=4)  # the same row again: added, not replaced
        assert await recorder.tokens_today(7) == 10 + 5 + 1 + 1 + 4 + 4  # stored 17 + pending 8
        await recorder.flush()
        recorder.record(1, 7, "m1", prompt=2, completion=0)
        assert await recorder.tokens_today(7) == 27  # known since the last call, counted on record
        clock.now = datetime(2026, 12, 2, 0, 0, 1, tzinfo=UTC)
        assert await recorder.tokens_today(7) == 0  # a new UTC day starts at zero
        recorder.record(1, 7, "m1", prompt=1, completion=1)
        await recorder.flush()

        by_model = {row.model_name: row for row in await usage(db, ADMIN, UsageGroup.MODEL, None, None)}
        # m1: 3 requests on the 1st (10+1+4+2 prompt, 5+1+4 completion) and 1 on the 2nd
        assert (by_model["m1"].requests, by_model["m1"].prompt_tokens, by_model["m1"].completion_tokens) == (5, 18, 11)
        assert by_model["m1"].total_tokens == 29 and by_model["m2"].requests == 1
        by_day = [(row.day.isoformat(), row.requests) for row in await usage(db, ADMIN, UsageGroup.DAY, None, None)]
        assert by_day == [("2026-12-01", 5), ("2026-12-02", 1)]
        first = datetime(2026, 12, 2, tzinfo=UTC).date()
        later = await usage(db, ADMIN, UsageGroup.KEY, first, first)
        assert [(row.api_key_id, row.requests) for row in later] == [(7, 1)]
        by_key = await usage(db, ADMIN, UsageGroup.KEY, None, None)
        assert {row.api_key_id: row.api_key_name for row in by_key} == {0: "(login session)", 7: "(deleted key 7)"}
        mine = await usage(
            db, Principal(kind=PrincipalKind.USER, authenticated_by="test", user_id=2), UsageGroup.USER, None, None
        )
        assert [(row.user_id, row.requests) for row in mine] == [(2, 1)]  # a user sees only their own
    finally:
        await db.dispose()


async def test_usage_pending_at_shutdown_is_written(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        server.runtime.gateway.usage.record(1, None, "m", prompt=2, completion=3)
    db = Database(f"sqlite:///{tmp_path / 'gpufleet.db'}")
    try:
        [row] = await usage(db, ADMIN, UsageGroup.MODEL, None, None)
        assert (row.requests, row.total_tokens) == (1, 5)
    finally:
        await db.dispose()
