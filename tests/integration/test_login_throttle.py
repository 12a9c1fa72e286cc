"""Login throttling (issue 12 finding 5): wrong passwords earn a 429 with ``Retry-After``.

Every request of these tests comes from 127.0.0.1, and both limits are 10 a minute by default;
the tests of the per-username lock raise the per-address limit so only the lock under test trips.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.support.server import ADMIN_PASSWORD, RunningServer, running_server
from tests.support.wait import eventually

WRONG = {"username": "admin", "password": "not-the-password"}
RIGHT = {"username": "admin", "password": ADMIN_PASSWORD}


async def _login(client: httpx.AsyncClient, body: dict[str, str]) -> httpx.Response:
    return await client.post("/api/auth/login", json=body)


def _assert_locked(response: httpx.Response, longest: int) -> int:
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= longest
    assert "too many failed logins" in response.json()["detail"]
    return retry_after


async def test_eleventh_wrong_password_within_a_minute_is_429_even_with_the_right_one(tmp_path: Path) -> None:
    async with running_server(tmp_path, login_failures_per_address=1000) as server:
        await _username_lock(server)


async def _username_lock(server: RunningServer) -> None:
    async with await server.admin() as admin:
        created = await admin.post("/api/users", json={"username": "dev", "password": "dev-password", "role": "user"})
        assert created.status_code == 201
    async with server.client() as client:
        for _ in range(10):
            assert (await _login(client, WRONG)).status_code == 401
        _assert_locked(await _login(client, WRONG), longest=30)
        _assert_locked(await _login(client, RIGHT), longest=30)  # locked means locked, whatever the password
        # The lock is on the username: another user from the same address still signs in.
        assert (await _login(client, {"username": "dev", "password": "dev-password"})).status_code == 200
        # Sessions opened before the lockout keep working; anonymous calls elsewhere stay 401.
        assert (await client.get("/api/models")).status_code == 200  # the cookie of dev's login
    async with server.client() as anonymous:
        assert (await anonymous.get("/api/models")).status_code == 401


async def test_unknown_users_are_answered_like_wrong_passwords_and_locked_alike(tmp_path: Path) -> None:
    async with running_server(tmp_path, login_failures_per_address=1000) as server:
        await _unknown_user_lock(server)


async def _unknown_user_lock(server: RunningServer) -> None:
    async with server.client() as client:
        wrong = await _login(client, WRONG)
        unknown = await _login(client, {"username": "ghost", "password": "not-the-password"})
        assert (wrong.status_code, wrong.json()) == (unknown.status_code, unknown.json())
        assert wrong.json() == {"detail": "wrong username or password", "code": "unauthorized"}
        assert wrong.headers.get("www-authenticate") == unknown.headers.get("www-authenticate") == "Bearer"
        for _ in range(9):
            assert (await _login(client, {"username": "ghost", "password": "x"})).status_code == 401
        _assert_locked(await _login(client, {"username": "ghost", "password": "x"}), longest=30)


async def test_lockout_ends_after_retry_after_grows_when_repeated_and_success_resets(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, login_lockout=1.0, login_failures_per_address=1000) as server,
        server.client() as client,
    ):
        # A success resets the username's count: 5 + 9 wrong around it never lock.
        for _ in range(5):
            assert (await _login(client, WRONG)).status_code == 401
        assert (await _login(client, RIGHT)).status_code == 200
        for _ in range(10):
            assert (await _login(client, WRONG)).status_code == 401
        assert _assert_locked(await _login(client, RIGHT), longest=1) == 1

        async def unlocked() -> bool:
            return (await _login(client, WRONG)).status_code == 401  # the first failure after the lockout

        await eventually(unlocked, timeout=10, interval=0.2, what="the first lockout to end")
        for _ in range(9):
            assert (await _login(client, WRONG)).status_code == 401
        assert _assert_locked(await _login(client, WRONG), longest=2) == 2  # the second lockout lasts twice as long

        async def signed_in() -> bool:
            return (await _login(client, RIGHT)).status_code == 200

        await eventually(signed_in, timeout=10, interval=0.2, what="the right password to work after the lockout")
        for _ in range(10):  # the success reset the count (and the growth)
            assert (await _login(client, WRONG)).status_code == 401
        assert _assert_locked(await _login(client, WRONG), longest=1) == 1


async def test_one_address_trying_many_usernames_is_locked_after_10_failures(server: RunningServer) -> None:
    async with server.client() as client:
        for n in range(10):
            assert (await _login(client, {"username": f"guess{n}", "password": "x"})).status_code == 401
        _assert_locked(await _login(client, {"username": "guess-next", "password": "x"}), longest=30)
        _assert_locked(await _login(client, RIGHT), longest=30)  # the address is locked, for every name


async def test_a_burst_of_concurrent_guesses_gets_no_more_password_checks_than_the_limit(server: RunningServer) -> None:
    async with server.client() as client:
        client.timeout = httpx.Timeout(60)
        answers = await asyncio.gather(*(_login(client, WRONG) for _ in range(100)))
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {401, 429}, statuses
    assert statuses.count(401) <= 10, statuses  # the rest were refused without argon2 work
    assert statuses.count(429) >= 90
