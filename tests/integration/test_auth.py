"""Login, sessions, API keys, and the 401-before-validation rule."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.routes import api_operations, concrete
from tests.support.server import ADMIN_PASSWORD, RunningServer, running_server


async def test_login_returns_bearer_token_and_cookie(server: RunningServer) -> None:
    async with server.client() as client:
        response = await client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert response.status_code == 200
        body = response.json()
        assert body["token_type"] == "bearer" and body["access_token"].startswith("gfs_")
        assert "gpufleet_session" in response.cookies
        # The cookie alone authenticates too (the web UI uses it).
        me = await client.get("/api/auth/me")
        assert me.status_code == 200 and me.json()["username"] == "admin"


async def test_wrong_password_and_unknown_user_are_401(server: RunningServer) -> None:
    async with server.client() as client:
        for body in ({"username": "admin", "password": "nope-nope"}, {"username": "ghost", "password": "x"}):
            response = await client.post("/api/auth/login", json=body)
            assert response.status_code == 401
            assert response.json()["detail"] == "wrong username or password"


async def test_generated_admin_password_must_be_changed(tmp_path: Path) -> None:
    async with running_server(tmp_path, bootstrap_password=None) as server:
        password = (tmp_path / "initial_admin_password").read_text().strip()
        assert len(password) >= 16
        assert (tmp_path / "initial_admin_password").stat().st_mode & 0o077 == 0
        token = await server.login(password=password)
        async with server.client(token) as client:
            assert (await client.get("/api/auth/me")).json()["must_change_password"] is True
            # The API accepts the generated password as is: other routes work.
            assert (await client.get("/api/users")).status_code == 200
            wrong = await client.post(
                "/api/auth/password", json={"current_password": "bad", "new_password": "new-password-1"}
            )
            assert wrong.status_code == 401
            short = await client.post(
                "/api/auth/password", json={"current_password": password, "new_password": "short"}
            )
            assert short.status_code == 422 and "new_password" in short.json()["detail"]
            changed = await client.post(
                "/api/auth/password", json={"current_password": password, "new_password": "new-password-1"}
            )
            assert changed.status_code == 204
            assert (await client.get("/api/auth/me")).json()["must_change_password"] is False
        assert await server.login(password="new-password-1")


async def test_bootstrap_password_is_used_as_given(server: RunningServer) -> None:
    async with await server.admin() as client:
        me = (await client.get("/api/auth/me")).json()
        assert me == {
            "id": me["id"],
            "username": "admin",
            "role": "admin",
            "must_change_password": False,
            "authenticated_by": "session",
        }


async def test_every_api_route_is_401_for_anonymous_callers_before_validation(server: RunningServer) -> None:
    api_routes = api_operations(server)
    assert len(api_routes) >= 25
    checked = 0
    async with server.client() as client:
        for method, template in api_routes:
            path = concrete(template)
            if (method, template) == ("POST", "/api/auth/login"):
                continue
            for token in (None, "not-a-real-token"):
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                response = await client.request(method, path, content=b"{malformed", headers=headers)
                assert response.status_code == 401, (method, path, response.text)
                assert response.headers["www-authenticate"] == "Bearer"
                checked += 1
    assert checked >= 50


async def test_public_routes_need_no_credentials(server: RunningServer) -> None:
    async with server.client() as client:
        assert (await client.get("/healthz")).json()["status"] == "ok"
        assert (await client.get("/openapi.json")).json()["info"]["title"] == "gpufleet"
        metrics = (await client.get("/metrics")).text
        assert 'gpufleet_workers{state="ready"}' in metrics
        assert 'gpufleet_instances{state="pending"}' in metrics


async def test_logout_ends_the_session(server: RunningServer) -> None:
    token = await server.login()
    async with server.client(token) as client:
        assert (await client.post("/api/auth/logout")).status_code == 204
        assert (await client.get("/api/auth/me")).status_code == 401


async def test_api_key_secret_is_shown_once_and_acts_with_owner_role(server: RunningServer) -> None:
    async with await server.admin() as admin:
        created = await admin.post("/api/api-keys", json={"name": "ci"})
        assert created.status_code == 201
        key = created.json()["key"]
        assert key.startswith(created.json()["prefix"] + "_")
        listed = (await admin.get("/api/api-keys")).json()
        assert [k["name"] for k in listed] == ["ci"] and all("key" not in k for k in listed)
        duplicate = await admin.post("/api/api-keys", json={"name": "ci"})
        assert duplicate.status_code == 409 and "already have an API key named 'ci'" in duplicate.json()["detail"]

        # A user's key acts as a user: may read models, may not list users.
        user = await admin.post("/api/users", json={"username": "dev", "password": "dev-password", "role": "user"})
        assert user.status_code == 201
    dev_token = await server.login("dev", "dev-password")
    async with server.client(dev_token) as dev:
        dev_key = (await dev.post("/api/api-keys", json={"name": "laptop", "allowed_models": ["m1"]})).json()
    async with server.client(dev_key["key"]) as by_key:
        me = (await by_key.get("/api/auth/me")).json()
        assert me["role"] == "user" and me["authenticated_by"] == "api_key"
        assert (await by_key.get("/api/models")).status_code == 200
        assert (await by_key.get("/api/users")).status_code == 403
    async with server.client(key) as admin_by_key:
        assert (await admin_by_key.get("/api/users")).status_code == 200
        # Deleting the key revokes it at once.
        assert (await admin_by_key.delete(f"/api/api-keys/{created.json()['id']}")).status_code == 204
        assert (await admin_by_key.get("/api/users")).status_code == 401


async def test_expired_api_key_is_refused(server: RunningServer) -> None:
    async with await server.admin() as admin:
        past = await admin.post("/api/api-keys", json={"name": "old", "expires_at": "2020-01-01T00:00:00Z"})
        assert past.status_code == 422 and "future" in past.json()["detail"]
        naive = await admin.post("/api/api-keys", json={"name": "naive", "expires_at": "2099-01-01T00:00:00"})
        assert naive.status_code == 422 and "timezone" in naive.json()["detail"]
        soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
        key = (await admin.post("/api/api-keys", json={"name": "soon", "expires_at": soon})).json()["key"]
    async with server.client(key) as client:
        assert (await client.get("/api/auth/me")).status_code == 200
        await asyncio.sleep(1.6)
        response = await client.get("/api/auth/me")
        assert response.status_code == 401 and "expired" in response.json()["detail"]


async def test_malformed_json_and_unknown_fields_are_clear_4xx(server: RunningServer) -> None:
    async with await server.admin() as admin:
        malformed = await admin.post(
            "/api/users", content=b'{"username": "x",', headers={"content-type": "application/json"}
        )
        assert malformed.status_code == 400 and "not valid JSON" in malformed.json()["detail"]
        unknown = await admin.post("/api/users", json={"username": "bob", "password": "long-enough", "colour": 1})
        assert unknown.status_code == 422
        assert unknown.json()["errors"] == [{"field": "colour", "message": unknown.json()["errors"][0]["message"]}]
        assert "unknown field" in unknown.json()["detail"]


async def test_changing_your_password_ends_your_other_sessions(server: RunningServer) -> None:
    """Someone who learned the old password is logged out with it; the session that changed it stays."""
    this, other = await server.login(), await server.login()
    async with server.client(this) as client, server.client(other) as elsewhere:
        assert (await elsewhere.get("/api/auth/me")).status_code == 200
        changed = await client.post(
            "/api/auth/password", json={"current_password": ADMIN_PASSWORD, "new_password": "another-password-1"}
        )
        assert changed.status_code == 204
        assert (await elsewhere.get("/api/auth/me")).status_code == 401  # at once: the cache was dropped
        assert (await client.get("/api/auth/me")).status_code == 200
