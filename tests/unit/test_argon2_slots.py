"""argon2 work is bounded in concurrency: a burst of logins waits its turn (64 MiB per check)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from gpufleet.server import secrets


class CountingHasher:
    """Stands in for argon2's hasher only to count how many checks run at once (real argon2 is
    exercised by every login test)."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def verify(self, password_hash: str, password: str) -> bool:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.02)
        with self.lock:
            self.running -= 1
        return False


async def test_at_most_one_argon2_check_per_core_runs_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    hasher = CountingHasher()
    monkeypatch.setattr(secrets, "_hasher", hasher)
    results = await asyncio.gather(*(secrets.verify_password("hash", "guess") for _ in range(40)))
    assert results == [False] * 40
    assert 1 <= hasher.most <= secrets.ARGON2_SLOTS


async def test_a_cancelled_check_keeps_its_slot_until_its_thread_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients that hang up mid-login must not let more checks run at once than there are slots."""
    hasher = CountingHasher()
    monkeypatch.setattr(secrets, "_hasher", hasher)
    first = [asyncio.ensure_future(secrets.verify_password("hash", "guess")) for _ in range(secrets.ARGON2_SLOTS)]
    await asyncio.sleep(0)  # let them take every slot
    for task in first:
        task.cancel()
    rest = await asyncio.gather(*(secrets.verify_password("hash", "guess") for _ in range(10)))
    assert rest == [False] * 10
    assert hasher.most <= secrets.ARGON2_SLOTS
