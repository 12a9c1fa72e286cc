"""Every management route has an explicit role (DESIGN §8): walk them all with every kind of caller.

``ROLES`` is the table of who may call what. A route missing from it fails the
test, so a new route cannot ship without a decision about who may call it.
Allowed callers must get past authorisation (any answer but 401, or a 403 from
the role check); the others must get that role check's 403.
"""

from __future__ import annotations

from tests.support.builders import register_worker
from tests.support.routes import api_operations, concrete
from tests.support.server import RunningServer

A, U, W, C = "admin", "user", "worker", "cluster"

ROLES: dict[tuple[str, str], set[str]] = {
    ("POST", "/api/auth/logout"): {A, U},
    ("GET", "/api/auth/me"): {A, U},
    ("POST", "/api/auth/password"): {A, U},
    ("GET", "/api/users"): {A},
    ("POST", "/api/users"): {A},
    ("GET", "/api/users/{user_id}"): {A},
    ("PATCH", "/api/users/{user_id}"): {A},
    ("DELETE", "/api/users/{user_id}"): {A},
    ("GET", "/api/api-keys"): {A, U},
    ("POST", "/api/api-keys"): {A, U},
    ("PATCH", "/api/api-keys/{key_id}"): {A, U},
    ("DELETE", "/api/api-keys/{key_id}"): {A, U},
    ("POST", "/api/workers/register"): {W, C},
    ("POST", "/api/workers/{worker_id}/heartbeat"): {W},
    ("GET", "/api/workers"): {A},
    ("GET", "/api/workers/join"): {A},
    ("GET", "/api/workers/{worker_id}"): {A, W},
    ("PATCH", "/api/workers/{worker_id}"): {A},
    ("DELETE", "/api/workers/{worker_id}"): {A},
    ("GET", "/api/devices"): {A},
    ("GET", "/api/models"): {A, U, W},
    ("POST", "/api/models"): {A},
    ("POST", "/api/models/preview"): {A},
    ("GET", "/api/models/{model_id}"): {A, U, W},
    ("PATCH", "/api/models/{model_id}"): {A},
    ("DELETE", "/api/models/{model_id}"): {A},
    ("GET", "/api/models/{model_id}/events"): {A, U},
    ("GET", "/api/model-instances"): {A, W},
    ("GET", "/api/model-instances/{instance_id}"): {A, W},
    ("GET", "/api/model-instances/{instance_id}/logs"): {A, W},
    ("POST", "/api/model-instances/{instance_id}/restart"): {A},
    ("POST", "/api/model-instances/{instance_id}/transition"): {W},
    ("POST", "/api/model-instances/{instance_id}/release"): {W},
    ("POST", "/api/model-instances/{instance_id}/rpc-server"): {W},
    ("GET", "/api/model-instances/{instance_id}/engine-key"): {W},
    ("GET", "/api/model-files"): {A},
    ("PUT", "/api/model-files"): {W},
    ("GET", "/api/watch"): {A, W},
    ("GET", "/api/usage"): {A, U},
    ("GET", "/api/usage/series"): {A, U},
    ("GET", "/api/metrics/targets"): {A, U},  # U: the user's API key; a user's session gets 403
}


async def test_every_route_checks_the_callers_role(server: RunningServer) -> None:
    operations = [op for op in api_operations(server) if op != ("POST", "/api/auth/login")]
    assert sorted(ROLES) == operations, "every /api route needs an entry in ROLES"

    async with await server.admin() as admin:
        admin_key = (await admin.post("/api/api-keys", json={"name": "walk"})).json()["key"]
        await admin.post("/api/users", json={"username": "walker", "password": "walker-password", "role": "user"})
        worker_credential = (await register_worker(admin, server.token, "walk-worker"))["credential"]
    async with server.client(await server.login("walker", "walker-password")) as user:
        user_key = (await user.post("/api/api-keys", json={"name": "walk"})).json()["key"]
    callers = {A: admin_key, U: user_key, W: worker_credential, C: server.token}

    for (method, template), allowed in ROLES.items():
        path = concrete(template, identifier=999_999)
        if template == "/api/watch":
            path += "?kinds=instances"
        for kind, credential in callers.items():
            async with server.client(credential) as client:
                if template == "/api/watch":
                    async with client.stream(method, path) as response:  # an allowed watch never ends
                        status = response.status_code
                        detail = (await response.aread()).decode() if status >= 400 else ""
                else:
                    response = await client.request(method, path, json={})
                    status, detail = response.status_code, response.text
            role_denied = status == 403 and f"a {kind} credential may not" in detail
            if kind in allowed:
                assert status != 401 and not role_denied, (kind, method, template, status, detail)
            else:
                assert role_denied, (kind, method, template, status, detail)
