"""``LoginThrottle`` on a fake clock: the window, the growing lockout and its bound, forgetting."""

from __future__ import annotations

import contextlib

import pytest

from gpufleet.server import login_throttle
from gpufleet.server.login_throttle import MAX_LOCKOUT, WINDOW, LoginThrottle, TooManyAttempts, address_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(throttle: LoginThrottle, times: int, username: str = "admin", address: str | None = "10.0.0.1") -> None:
    for _ in range(times):
        throttle.begin(username, address)
        throttle.end(username, address, succeeded=False)


def retry_after(throttle: LoginThrottle, username: str = "admin", address: str | None = "10.0.0.1") -> int:
    with pytest.raises(TooManyAttempts) as refused:
        throttle.begin(username, address)
    return refused.value.retry_after


def test_failures_older_than_the_window_do_not_count() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_user=10, per_address=30, lockout=30, clock=clock)
    fail(throttle, 9)
    clock.now += WINDOW + 1
    fail(throttle, 9)  # 18 failures, never 10 within a minute
    throttle.begin("admin", "10.0.0.1")


def test_each_lockout_doubles_up_to_the_bound() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_user=10, per_address=1000, lockout=30, clock=clock)
    seen = []
    for _ in range(8):
        fail(throttle, 10)
        seen.append(retry_after(throttle))
        clock.now += seen[-1]
    # 30 · 2^(n-1) seconds, at most MAX_LOCKOUT (900)
    assert seen == [30, 60, 120, 240, 480, 900, 900, 900]
    assert MAX_LOCKOUT == 900


def test_attempts_under_way_count_so_a_burst_gets_at_most_the_limit() -> None:
    throttle = LoginThrottle(per_user=3, per_address=100, lockout=30, clock=Clock())
    for _ in range(3):
        throttle.begin("admin", None)
    assert retry_after(throttle, address=None) == 1  # three checks under way: the fourth waits
    throttle.end("admin", None, succeeded=None)  # not a verdict (say, the database failed): not counted
    throttle.begin("admin", None)


def test_success_resets_the_username_not_the_address_and_old_records_are_forgotten() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_user=10, per_address=12, lockout=30, clock=clock)
    fail(throttle, 9)
    throttle.begin("admin", "10.0.0.1")
    throttle.end("admin", "10.0.0.1", succeeded=True)
    fail(throttle, 3, username="other")  # the address has 12 failures now
    assert retry_after(throttle) == 30
    clock.now += MAX_LOCKOUT + 1
    throttle.begin("admin", "10.0.0.1")  # forgotten, not merely unlocked


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),  # IPv4-mapped counts as the IPv4 address
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),  # one host usually holds a whole /64
        ("testclient", "testclient"),  # not an IP: as it is
    ],
)
def test_addresses_count_by_host_and_ipv6_by_its_64(address: str, key: str) -> None:
    assert address_key(address) == key


def test_guesses_spread_over_an_ipv6_64_lock_it() -> None:
    throttle = LoginThrottle(per_user=1000, per_address=10, lockout=30, clock=Clock())
    for n in range(10):
        fail(throttle, 1, username=f"guess{n}", address=f"2001:db8::{n + 1:x}")
    assert retry_after(throttle, username="admin", address="2001:db8::ffff") == 30


def test_a_flood_of_fresh_keys_never_unlocks_a_locked_username(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(login_throttle, "MAX_KEYS", 50)
    clock = Clock()
    throttle = LoginThrottle(per_user=10, per_address=10, lockout=30, clock=clock)
    fail(throttle, 10, address=None)
    for n in range(200):  # fresh names from fresh addresses, each failing once
        with contextlib.suppress(TooManyAttempts):  # full of locked records: new keys wait
            fail(throttle, 1, username=f"flood{n}", address=f"198.51.100.{n % 250}")
    assert retry_after(throttle, address=None) == 30  # admin's lockout survived the flood
