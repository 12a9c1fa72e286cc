"""One place to read the time, so every timestamp is timezone-aware UTC.

Liveness is judged by the server's clock only: timestamps that matter for it
are taken here on the server, never copied from a worker's message.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; treat them as the UTC they were written in."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
