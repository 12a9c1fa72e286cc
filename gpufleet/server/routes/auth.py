"""``/api/auth``: login, logout, who am I, change my password."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select

from gpufleet.db.session import Database
from gpufleet.db.tables import User
from gpufleet.schemas.auth import LoginRequest, Me, PasswordChange, TokenResponse
from gpufleet.schemas.users import Role
from gpufleet.server.auth import SESSION_COOKIE, USERS, allow, credential_from_scope
from gpufleet.server.deps import database
from gpufleet.server.login_throttle import LoginThrottle
from gpufleet.server.principal import Principal
from gpufleet.server.services import users as user_service
from gpufleet.server.services.users import SESSION_LIFETIME

router = APIRouter(prefix="/api/auth", tags=["auth"])


async def login_throttle(request: Request) -> LoginThrottle:
    throttle: LoginThrottle = request.app.state.login_throttle
    return throttle


@router.post("/login", response_model=TokenResponse)
async def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    db: Database = Depends(database),
    throttle: LoginThrottle = Depends(login_throttle),
) -> TokenResponse:
    """Sign in; the answer carries a session token, also set as the session cookie.

    Too many wrong passwords for one username or from one address within a minute answer 429 with
    ``Retry-After`` (seconds) until the lockout ends."""
    address = request.client.host if request.client else None
    token = await user_service.login(db, body.username, body.password, throttle, address)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=int(SESSION_LIFETIME.total_seconds()), httponly=True, samesite="lax"
    )
    return TokenResponse(access_token=token)


@router.post("/logout", status_code=204)
async def logout(
    request: Request,
    response: Response,
    principal: Principal = Depends(allow(*USERS)),
    db: Database = Depends(database),
) -> None:
    credential = credential_from_scope(request.scope)
    if principal.authenticated_by == "session" and credential:
        await user_service.logout(db, credential)
    response.delete_cookie(SESSION_COOKIE)


@router.get("/me", response_model=Me)
async def me(principal: Principal = Depends(allow(*USERS)), db: Database = Depends(database)) -> Me:
    async with db.read() as session:
        user = (await session.execute(select(User).where(User.id == principal.user_id))).scalar_one()
    return Me(
        id=user.id,
        username=user.username,
        role=Role(user.role),
        must_change_password=user.must_change_password,
        authenticated_by="api_key" if principal.authenticated_by == "api_key" else "session",
    )


@router.post("/password", status_code=204)
async def change_password(
    body: PasswordChange,
    request: Request,
    principal: Principal = Depends(allow(*USERS)),
    db: Database = Depends(database),
) -> None:
    """Change your password; your other sessions end (this one stays, if it is a session)."""
    this_session = credential_from_scope(request.scope) if principal.authenticated_by == "session" else None
    await user_service.change_own_password(
        db, principal, body.current_password, body.new_password, keep_session=this_session
    )
