"""Authentication (who is calling) and authorisation (may they call this route).

Authentication happens in an ASGI middleware, before routing and before the
body is read: every ``/api`` route except ``POST /api/auth/login`` answers 401
to a caller without a valid credential, whatever the body holds. Routes then
declare which principal kinds they accept with one dependency
(``Depends(allow(...))``), which answers 403 to the others.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from fastapi import Request
from sqlalchemy import select, update
from starlette.types import ASGIApp, Receive, Scope, Send

from gpufleet.common.clock import as_utc, utcnow
from gpufleet.common.errors import Forbidden
from gpufleet.db.session import Database
from gpufleet.db.tables import ApiKey, User, UserSession, Worker
from gpufleet.server import secrets
from gpufleet.server.principal import Principal, PrincipalKind

logger = logging.getLogger(__name__)

SESSION_COOKIE = "gpufleet_session"
SESSION_LIFETIME = timedelta(days=7)
LAST_USED_WRITE_INTERVAL = 60.0  # seconds between last_used_at writes per API key

# (method, path) pairs under /api that need no credential.
PUBLIC_API = {("POST", "/api/auth/login")}


class PrincipalResolver:
    """Turns a bearer credential into a ``Principal`` (or None). Reads the database only."""

    def __init__(self, db: Database, cluster_token: str) -> None:
        self.db = db
        self.cluster_token = cluster_token
        self._last_used_written: dict[int, float] = {}

    async def resolve(self, credential: str) -> Principal | None:
        if credential.startswith(secrets.SESSION_PREFIX):
            return await self._session(credential)
        if credential.startswith(secrets.WORKER_PREFIX):
            return await self._worker(credential)
        if credential.startswith(secrets.API_KEY_PREFIX):
            return await self._api_key(credential)
        if self.cluster_token and secrets.same(credential, self.cluster_token):
            return Principal(kind=PrincipalKind.CLUSTER, authenticated_by="cluster_token")
        return None

    async def _session(self, token: str) -> Principal | None:
        async with self.db.read() as session:
            row = (
                await session.execute(
                    select(UserSession, User)
                    .join(User, User.id == UserSession.user_id)
                    .where(UserSession.token_hash == secrets.sha256(token))
                )
            ).first()
        if row is None or as_utc(row[0].expires_at) <= utcnow():
            return None
        return _user_principal(row[1], "session")

    async def _worker(self, credential: str) -> Principal | None:
        async with self.db.read() as session:
            worker_id = (
                await session.execute(select(Worker.id).where(Worker.credential_hash == secrets.sha256(credential)))
            ).scalar_one_or_none()
        if worker_id is None:
            return None
        return Principal(kind=PrincipalKind.WORKER, authenticated_by="worker_credential", worker_id=worker_id)

    async def _api_key(self, key: str) -> Principal | None:
        parts = secrets.split_api_key(key)
        if parts is None:
            return None
        key_id, secret = parts
        async with self.db.read() as session:
            row = (
                await session.execute(
                    select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.key_id == key_id)
                )
            ).first()
        if row is None:
            return None
        api_key, user = row
        if not secrets.same(api_key.secret_hash, secrets.sha256(secret)):
            return None
        if api_key.expires_at is not None and as_utc(api_key.expires_at) <= utcnow():
            return None
        await self._touch(api_key.id)
        models = tuple(api_key.allowed_models) if api_key.allowed_models is not None else None
        return _user_principal(user, "api_key", api_key_id=api_key.id, allowed_models=models)

    async def _touch(self, api_key_id: int) -> None:
        now = time.monotonic()
        if now - self._last_used_written.get(api_key_id, -LAST_USED_WRITE_INTERVAL) < LAST_USED_WRITE_INTERVAL:
            return
        self._last_used_written[api_key_id] = now
        async with self.db.transaction() as session:
            await session.execute(update(ApiKey).where(ApiKey.id == api_key_id).values(last_used_at=utcnow()))


def _user_principal(user: User, by: str, **extra: Any) -> Principal:
    return Principal(
        kind=PrincipalKind(user.role),
        authenticated_by=by,
        user_id=user.id,
        username=user.username,
        must_change_password=user.must_change_password,
        **extra,
    )


def credential_from_scope(scope: Scope) -> str | None:
    """The bearer token from ``Authorization``, else the session cookie."""
    cookie_value: str | None = None
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = bytes(value).decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, cookie = part.strip().partition("=")
                if key == SESSION_COOKIE and cookie:
                    cookie_value = cookie
    return cookie_value


class AuthMiddleware:
    """Resolves the principal of every ``/api`` request, or answers 401 before anything else runs."""

    def __init__(self, app: ASGIApp, resolver_factory: Callable[[], PrincipalResolver]) -> None:
        self.app = app
        self.resolver_factory = resolver_factory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_api(scope["path"]):
            await self.app(scope, receive, send)
            return
        principal = None
        credential = credential_from_scope(scope)
        if credential:
            principal = await self.resolver_factory().resolve(credential)
        if principal is None and (scope["method"], scope["path"].rstrip("/")) not in PUBLIC_API:
            detail = (
                "invalid, expired or revoked credential"
                if credential
                else "authentication required: send 'Authorization: Bearer <token or API key>'"
            )
            await _send_json(send, 401, {"detail": detail}, [(b"www-authenticate", b"Bearer")])
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def allow(*kinds: PrincipalKind) -> Callable[[Request], Principal]:
    """A route dependency: the caller's principal, if its kind is one of ``kinds``; else 403."""
    accepted = frozenset(kinds)

    def dependency(request: Request) -> Principal:
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:  # only reachable on PUBLIC_API routes, which do not use this
            raise Forbidden("this route needs a credential")
        if principal.kind not in accepted:
            raise Forbidden(
                f"a {principal.kind.value} credential may not {request.method} {request.url.path}"
                f" (allowed: {_names(accepted)})"
            )
        return principal

    return dependency


def _names(kinds: Iterable[PrincipalKind]) -> str:
    return ", ".join(sorted(k.value for k in kinds))


ADMIN = (PrincipalKind.ADMIN,)
USERS = (PrincipalKind.ADMIN, PrincipalKind.USER)
WORKER = (PrincipalKind.WORKER,)
ADMIN_OR_WORKER = (PrincipalKind.ADMIN, PrincipalKind.WORKER)
REGISTRANT = (PrincipalKind.CLUSTER, PrincipalKind.WORKER)
