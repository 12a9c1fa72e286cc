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
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request
from sqlalchemy import select, update
from starlette.types import ASGIApp, Receive, Scope, Send

from gpufleet.common.clock import as_utc, utcnow
from gpufleet.common.errors import Forbidden
from gpufleet.db.session import Database
from gpufleet.db.tables import ApiKey, User, UserSession, Worker
from gpufleet.server import secrets
from gpufleet.server.gateway.errors import error_response
from gpufleet.server.principal import Principal, PrincipalKind

logger = logging.getLogger(__name__)

SESSION_COOKIE = "gpufleet_session"
LAST_USED_WRITE_INTERVAL = 60.0  # seconds between last_used_at writes per API key

# (method, path) pairs under /api that need no credential.
PUBLIC_API = {("POST", "/api/auth/login")}


CACHE_TTL = 5.0  # seconds a verified session or API key is trusted without reading the database
# A worker's credential is only ever revoked by deleting the worker, which empties this server's cache
# at once (and ends the worker's watch stream by its event); the TTL bounds other replicas' trust.
# (each worker's is remembered for between half and one and a half times this, at random, so that
# thousands of workers that registered together are not all looked up again in the same second)
WORKER_CACHE_TTL = 120.0
# Verified credentials kept at most (about 300 bytes each): above every worker of a large fleet plus
# its users' sessions and keys. Beyond it, the expired go first; the cache starts over only if none has.
CACHE_LIMIT = 100_000


@dataclass(frozen=True)
class _Verified:
    principal: Principal
    expires_at: datetime | None  # the credential's own expiry
    fresh_until: float  # monotonic time after which the database is asked again


class PrincipalResolver:
    """Turns a bearer credential into a ``Principal`` (or None). Reads the database only.

    Sessions and API keys, once verified, are remembered for ``CACHE_TTL`` seconds (keyed by the
    credential's SHA-256), so the gateway does not read the database on every request. A change
    committed by this server that revokes or alters a credential (``record_credentials_change``)
    empties the cache at once; the TTL bounds how long another server replica may trust one.
    """

    def __init__(self, db: Database, cluster_token: str) -> None:
        self.db = db
        self.cluster_token = cluster_token
        self._last_used_written: dict[int, float] = {}
        self._verified: dict[str, _Verified] = {}
        self._generation = 0  # bumped by ``forget``: a lookup that began before it is not remembered
        db.add_credentials_listener(self.forget)

    def forget(self) -> None:
        """Drop every remembered verification (a credential was revoked or changed)."""
        self._generation += 1
        self._verified.clear()

    async def resolve(self, credential: str) -> Principal | None:
        if credential.startswith(secrets.WORKER_PREFIX):
            return await self._worker(credential)
        if not credential.startswith((secrets.SESSION_PREFIX, secrets.API_KEY_PREFIX)):
            if self.cluster_token and secrets.same(credential, self.cluster_token):
                return Principal(kind=PrincipalKind.CLUSTER, authenticated_by="cluster_token")
            return None
        digest = secrets.sha256(credential)
        known = self._verified.get(digest)
        if known is not None and known.fresh_until > time.monotonic() and not _expired(known.expires_at):
            if known.principal.api_key_id is not None:
                await self._touch(known.principal.api_key_id)
            return known.principal
        self._verified.pop(digest, None)
        generation = self._generation
        found = await self._session(credential) if credential.startswith(secrets.SESSION_PREFIX) else None
        if credential.startswith(secrets.API_KEY_PREFIX):
            found = await self._api_key(credential)
        if found is None:
            return None
        principal, expires_at = found
        if generation != self._generation:  # revoked or changed while we read: answer, but do not remember
            return principal
        self._remember(digest, _Verified(principal, expires_at, time.monotonic() + CACHE_TTL))
        return principal

    def _remember(self, digest: str, verified: _Verified) -> None:
        if len(self._verified) >= CACHE_LIMIT:
            now = time.monotonic()
            self._verified = {k: v for k, v in self._verified.items() if v.fresh_until > now}
            if len(self._verified) >= CACHE_LIMIT:
                self._verified.clear()
        self._verified[digest] = verified

    async def _session(self, token: str) -> tuple[Principal, datetime | None] | None:
        async with self.db.read() as session:
            row = (
                await session.execute(
                    select(UserSession, User)
                    .join(User, User.id == UserSession.user_id)
                    .where(UserSession.token_hash == secrets.sha256(token))
                )
            ).first()
        if row is None or _expired(row[0].expires_at):
            return None
        return _user_principal(row[1], "session"), row[0].expires_at

    async def _worker(self, credential: str) -> Principal | None:
        """A worker's credential, remembered like a session (heartbeats and watch checks come by the thousand)."""
        digest = secrets.sha256(credential)
        known = self._verified.get(digest)
        if known is not None and known.fresh_until > time.monotonic():
            return known.principal
        generation = self._generation
        principal = await self._worker_lookup(credential)
        if principal is not None and generation == self._generation:
            ttl = WORKER_CACHE_TTL * (0.5 + random.random())
            self._remember(digest, _Verified(principal, None, time.monotonic() + ttl))
        return principal

    async def _worker_lookup(self, credential: str) -> Principal | None:
        async with self.db.read() as session:
            worker_id = (
                await session.execute(select(Worker.id).where(Worker.credential_hash == secrets.sha256(credential)))
            ).scalar_one_or_none()
        if worker_id is None:
            return None
        return Principal(kind=PrincipalKind.WORKER, authenticated_by="worker_credential", worker_id=worker_id)

    async def _api_key(self, key: str) -> tuple[Principal, datetime | None] | None:
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
        if _expired(api_key.expires_at):
            return None
        await self._touch(api_key.id)
        models = tuple(api_key.allowed_models) if api_key.allowed_models is not None else None
        principal = _user_principal(
            user,
            "api_key",
            api_key_id=api_key.id,
            allowed_models=models,
            requests_per_minute=api_key.requests_per_minute,
            tokens_per_day=api_key.tokens_per_day,
        )
        return principal, api_key.expires_at

    async def _touch(self, api_key_id: int) -> None:
        now = time.monotonic()
        if now - self._last_used_written.get(api_key_id, -LAST_USED_WRITE_INTERVAL) < LAST_USED_WRITE_INTERVAL:
            return
        self._last_used_written[api_key_id] = now
        async with self.db.transaction() as session:
            await session.execute(update(ApiKey).where(ApiKey.id == api_key_id).values(last_used_at=utcnow()))


def _expired(expires_at: datetime | None) -> bool:
    return expires_at is not None and as_utc(expires_at) <= utcnow()


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
    """Resolves the principal of every ``/api`` and ``/v1`` request, or answers 401 before anything
    else runs (under ``/v1`` in OpenAI's error shape, which OpenAI SDKs read)."""

    def __init__(self, app: ASGIApp, resolver_factory: Callable[[], PrincipalResolver]) -> None:
        self.app = app
        self.resolver_factory = resolver_factory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        openai = scope["type"] == "http" and _is_openai(scope["path"])
        if scope["type"] != "http" or not (openai or _is_api(scope["path"])):
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
            if openai:
                await error_response(401, f"{detail} (API keys are created at /api/api-keys)", "invalid_api_key")(
                    scope, receive, send
                )
            else:
                await _send_json(send, 401, {"detail": detail}, [(b"www-authenticate", b"Bearer")])
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def _is_openai(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


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


def allow(*kinds: PrincipalKind) -> Callable[[Request], Awaitable[Principal]]:
    """A route dependency: the caller's principal, if its kind is one of ``kinds``; else 403.
    (``async``: FastAPI would run a plain function in its thread pool, per request.)"""
    accepted = frozenset(kinds)

    async def dependency(request: Request) -> Principal:
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
