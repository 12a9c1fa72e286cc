"""The gateway's own answers, before any engine is involved: every failure in OpenAI's error shape,
with a message that says what to do; the usage API's grouping and validation.

These run on the real in-process server; the answers that need a real engine are in
``tests/e2e/test_gateway.py``.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.builders import local_model, register_worker
from tests.support.server import RunningServer

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}


def openai_error(response: httpx.Response, status: int, code: str) -> str:
    """Asserts the status and OpenAI's ``{"error": {"message", "type", "code"}}``; returns the message."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and error["type"] and error["message"], error
    return str(error["message"])


async def test_credentials_are_checked_before_anything_else(server: RunningServer) -> None:
    async with server.client() as anonymous:
        message = openai_error(await anonymous.post("/v1/chat/completions", content=b"{broken"), 401, "invalid_api_key")
        assert "Authorization: Bearer" in message
        openai_error(await anonymous.get("/v1/models"), 401, "invalid_api_key")
    async with server.client("gf_000000000000_not-a-real-secret") as forged:
        response = await forged.post("/v1/chat/completions", json=CHAT)
        assert "invalid, expired or revoked" in openai_error(response, 401, "invalid_api_key")
        assert response.headers["www-authenticate"] == "Bearer"


async def test_worker_and_cluster_credentials_cannot_call_the_openai_api(server: RunningServer) -> None:
    async with await server.admin() as admin:
        credential = (await register_worker(admin, server.token, "w1"))["credential"]
    for secret in (credential, server.token):
        async with server.client(secret) as client:
            assert "use a user's API key" in openai_error(
                await client.post("/v1/chat/completions", json=CHAT), 403, "credential_not_allowed"
            )


async def test_bad_bodies_unknown_models_and_models_not_running(server: RunningServer) -> None:
    async with await server.admin() as admin:
        assert (await admin.post("/api/models", json=local_model("qwen-chat", replicas=1))).status_code == 201
        assert (await admin.post("/api/models", json=local_model("idle", replicas=0))).status_code == 201
        key = (await admin.post("/api/api-keys", json={"name": "k"})).json()["key"]
    async with server.client(key) as client:
        openai_error(await client.post("/v1/chat/completions", content=b"{not json"), 400, "invalid_json")
        openai_error(await client.post("/v1/completions", json=["a"]), 400, "invalid_body")
        assert "'model' is required" in openai_error(
            await client.post("/v1/embeddings", json={"input": "x"}), 400, "missing_model"
        )
        unknown = await client.post("/v1/chat/completions", json={**CHAT, "model": "qwen-chta"})
        assert "did you mean 'qwen-chat'" in openai_error(unknown, 404, "model_not_found")
        # deployed, but no worker exists: the message says what its instance is waiting for
        pending = await client.post("/v1/chat/completions", json={**CHAT, "model": "qwen-chat"})
        message = openai_error(pending, 503, "model_not_running")
        assert "no running instance" in message and "pending" in message
        assert "replicas is 0" in openai_error(
            await client.post("/v1/chat/completions", json={**CHAT, "model": "idle"}), 503, "model_not_running"
        )
        openai_error(await client.post("/v1/nothing-here", json=CHAT), 404, "unknown_route")
        openai_error(await client.get("/v1/chat/completions"), 405, "method_not_allowed")
        assert (await client.get("/v1/models")).json() == {"object": "list", "data": []}  # nothing runs


async def test_a_key_limited_to_some_models_is_told_which(server: RunningServer) -> None:
    async with await server.admin() as admin:
        await admin.post("/api/models", json=local_model("allowed-one"))
        await admin.post("/api/models", json=local_model("other"))
        key = (await admin.post("/api/api-keys", json={"name": "scoped", "allowed_models": ["allowed-one"]})).json()
    async with server.client(key["key"]) as client:
        message = openai_error(
            await client.post("/v1/chat/completions", json={**CHAT, "model": "other"}), 403, "model_not_allowed"
        )
        assert "it may use: allowed-one" in message
        # an unknown name does not reveal the deployments the key may not use
        assert "other" not in openai_error(
            await client.post("/v1/chat/completions", json={**CHAT, "model": "othr"}), 403, "model_not_allowed"
        )


async def test_a_deleted_key_stops_working_at_once(server: RunningServer) -> None:
    async with await server.admin() as admin:
        created = (await admin.post("/api/api-keys", json={"name": "short-lived"})).json()
        async with server.client(created["key"]) as client:
            assert (await client.get("/v1/models")).status_code == 200  # verified, and remembered
            assert (await admin.delete(f"/api/api-keys/{created['id']}")).status_code == 204
            openai_error(await client.get("/v1/models"), 401, "invalid_api_key")
            assert (await client.get("/api/auth/me")).status_code == 401


async def test_key_limits_are_validated_and_shown(server: RunningServer) -> None:
    async with await server.admin() as admin:
        bad = await admin.post("/api/api-keys", json={"name": "k", "requests_per_minute": 0})
        assert bad.status_code == 422 and "requests_per_minute" in bad.text
        bad = await admin.post("/api/api-keys", json={"name": "k", "tokens_per_day": -5})
        assert bad.status_code == 422 and "tokens_per_day" in bad.text
        made = await admin.post("/api/api-keys", json={"name": "k", "requests_per_minute": 60, "tokens_per_day": 10})
        assert made.status_code == 201
        [listed] = (await admin.get("/api/api-keys")).json()
        assert listed["requests_per_minute"] == 60 and listed["tokens_per_day"] == 10 and "key" not in listed


async def test_usage_api_validates_its_query(server: RunningServer) -> None:
    async with await server.admin() as admin:
        assert (await admin.get("/api/usage")).json() == []
        assert (await admin.get("/api/usage", params={"group_by": "key"})).status_code == 200
        wrong = await admin.get("/api/usage", params={"group_by": "colour"})
        assert wrong.status_code == 422 and "group_by" in wrong.text
        backwards = await admin.get("/api/usage", params={"from": "2026-12-02", "to": "2026-12-01"})
        assert backwards.status_code == 422 and "after" in backwards.text
        bad_day = await admin.get("/api/usage", params={"from": "yesterday"})
        assert bad_day.status_code == 422 and "from" in bad_day.text


async def test_a_keys_limits_can_be_changed_and_apply_at_once(server: RunningServer) -> None:
    async with await server.admin() as admin:
        await admin.post("/api/models", json=local_model("m-a"))
        await admin.post("/api/models", json=local_model("m-b"))
        created = (await admin.post("/api/api-keys", json={"name": "k", "allowed_models": ["m-a"]})).json()
        async with server.client(created["key"]) as client:
            # m-b is refused while the key is limited to m-a (and the verification is now cached)
            openai_error(
                await client.post("/v1/chat/completions", json={**CHAT, "model": "m-b"}), 403, "model_not_allowed"
            )
            changed = await admin.patch(
                f"/api/api-keys/{created['id']}", json={"allowed_models": None, "requests_per_minute": 5}
            )
            assert changed.status_code == 200, changed.text
            assert changed.json()["allowed_models"] is None and changed.json()["requests_per_minute"] == 5
            # at once: m-b is now only "not running" (no worker here), not "not allowed"
            openai_error(
                await client.post("/v1/chat/completions", json={**CHAT, "model": "m-b"}), 503, "model_not_running"
            )
        bad = await admin.patch(f"/api/api-keys/{created['id']}", json={"expires_at": "2001-01-01T00:00:00Z"})
        assert bad.status_code == 422 and "future" in bad.text
        assert (await admin.patch("/api/api-keys/999999", json={"tokens_per_day": 5})).status_code == 404
        unknown = await admin.patch(f"/api/api-keys/{created['id']}", json={"colour": "red"})
        assert unknown.status_code == 422 and "colour" in unknown.text
    async with server.client(await server.login()) as other:
        await other.post("/api/users", json={"username": "u2", "password": "u2-password-1", "role": "user"})
    async with server.client(await server.login("u2", "u2-password-1")) as stranger:
        assert (await stranger.patch(f"/api/api-keys/{created['id']}", json={"tokens_per_day": 1})).status_code == 404
