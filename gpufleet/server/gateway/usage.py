"""Usage per (UTC day and hour, user, API key, model), and each key's tokens today for its daily limit.

The gateway counts every answered request here in memory; a background task writes the sums to
``usage_records`` about once a second with one upsert per row, so a request never waits on a
database write. ``flush()`` is also called before usage is read (``GET /api/usage``) and at
shutdown, so nothing counted is lost on a clean stop.

Tokens today per key (for ``tokens_per_day``) = what the database had for the key when this process
last read it (at most ``TOKENS_REREAD`` seconds ago, so other server replicas' usage is seen too) +
what this process counted since. Invariant: a count is added to the pending sums and to the key's
today total in the same step.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Executable, func, select
from sqlalchemy.dialects import postgresql, sqlite

from gpufleet.db.session import Database
from gpufleet.db.tables import UsageRecord
from gpufleet.server.services.usage import NO_KEY

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FLUSH_INTERVAL = 1.0  # seconds between writes of the pending sums
TOKENS_REREAD = 10.0  # seconds a key's stored tokens of today are trusted before reading them again


@dataclass
class _Sums:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


Row = tuple[str, int, int, int, str]  # day, hour, user id, api key id (or NO_KEY), model name


SECONDS_PER_DAY = 86_400


@functools.lru_cache(maxsize=4)
def _day_name(day_number: int) -> str:
    return (EPOCH + timedelta(days=day_number)).strftime("%Y-%m-%d")


def day_of(timestamp: float) -> str:
    """The UTC day (YYYY-MM-DD) of a unix timestamp; cheap, since every request asks."""
    return _day_name(int(timestamp // SECONDS_PER_DAY))


def hour_of(timestamp: float) -> int:
    """The UTC hour (0-23) of a unix timestamp."""
    return int(timestamp % SECONDS_PER_DAY) // 3600


def seconds_until_tomorrow(now: datetime) -> int:
    """Seconds until the next UTC midnight, when daily token limits start over (at least 1)."""
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((start + timedelta(days=1) - now).total_seconds()) + 1)


class UsageRecorder:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self._clock = clock
        self._pending: dict[Row, _Sums] = {}
        self._today: dict[int, tuple[str, int, float]] = {}  # api key id -> (day, tokens that day, read at)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._flush_lock = asyncio.Lock()

    def record(self, user_id: int, api_key_id: int | None, model_name: str, prompt: int, completion: int) -> None:
        now = self._clock()
        day = day_of(now)
        key = api_key_id or NO_KEY
        sums = self._pending.setdefault((day, hour_of(now), user_id, key, model_name), _Sums())
        sums.requests += 1
        sums.prompt_tokens += prompt
        sums.completion_tokens += completion
        known = self._today.get(key)
        if known is not None and known[0] == day:
            self._today[key] = (day, known[1] + prompt + completion, known[2])

    async def tokens_today(self, api_key_id: int) -> int:
        """Prompt + completion tokens of this key so far today (UTC)."""
        day = day_of(self._clock())
        known = self._today.get(api_key_id)
        if known is not None and known[0] == day and time.monotonic() - known[2] < TOKENS_REREAD:
            return known[1]
        async with self.db.read() as session:
            stored = (
                await session.execute(
                    select(func.coalesce(func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens), 0)).where(
                        UsageRecord.day == day, UsageRecord.api_key_id == api_key_id
                    )
                )
            ).scalar_one()
        pending = sum(
            s.prompt_tokens + s.completion_tokens
            for (d, _, _, key, _), s in self._pending.items()
            if d == day and key == api_key_id
        )
        total = int(stored) + pending
        self._today[api_key_id] = (day, total, time.monotonic())
        return total

    async def flush(self) -> None:
        """Write the pending sums (added to what is stored). On failure they stay pending."""
        async with self._flush_lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, {}
            try:
                async with self.db.transaction() as session:
                    for row, sums in batch.items():
                        await session.execute(_upsert(self.db.dialect, row, sums))
            except BaseException:
                for row, sums in batch.items():  # keep them for the next flush
                    merged = self._pending.setdefault(row, _Sums())
                    merged.requests += sums.requests
                    merged.prompt_tokens += sums.prompt_tokens
                    merged.completion_tokens += sums.completion_tokens
                raise

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="usage-flush")

    async def stop(self) -> None:
        """Stop the writer and write what is pending; a failure is logged (the server is stopping).

        The writer is asked to stop, not cancelled: cancelled during a commit, it would put back a
        batch that may have been written, and the last flush would count it twice."""
        if self._task is not None:
            self._stopping.set()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.flush()
        except Exception:
            logger.exception("could not write the last gateway usage before stopping; it is lost")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), FLUSH_INTERVAL)
            try:
                await self.flush()
            except Exception:
                logger.exception("writing gateway usage failed; keeping it for the next try")


def _upsert(dialect: str, row: Row, sums: _Sums) -> Executable:
    """Add ``sums`` to the row of (day, hour, user, key, model), creating it if needed (one statement on
    both databases; the unique key has no NULL, so concurrent writers add up instead of clashing)."""
    day, hour, user_id, key, model = row
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(UsageRecord).values(
        day=day,
        hour=hour,
        user_id=user_id,
        api_key_id=key,
        model_name=model,
        requests=sums.requests,
        prompt_tokens=sums.prompt_tokens,
        completion_tokens=sums.completion_tokens,
    )
    return statement.on_conflict_do_update(
        index_elements=["day", "hour", "user_id", "api_key_id", "model_name"],
        set_={
            "requests": UsageRecord.requests + statement.excluded.requests,
            "prompt_tokens": UsageRecord.prompt_tokens + statement.excluded.prompt_tokens,
            "completion_tokens": UsageRecord.completion_tokens + statement.excluded.completion_tokens,
        },
    )
