"""Users, logins and the bootstrap admin."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gpufleet.common.clock import utcnow
from gpufleet.common.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from gpufleet.common.paths import write_secret_file
from gpufleet.db.session import Database, record_credentials_change
from gpufleet.db.tables import User, UserSession
from gpufleet.schemas.users import Role, UserCreate, UserPublic, UserUpdate
from gpufleet.server import secrets
from gpufleet.server.login_throttle import LoginThrottle
from gpufleet.server.principal import Principal

SESSION_LIFETIME = timedelta(days=7)  # a login session's validity

logger = logging.getLogger(__name__)

ADMIN_USERNAME = "admin"


async def bootstrap_admin(db: Database, password_file: Path, bootstrap_password: str | None) -> None:
    """Create user ``admin`` on first start.

    With ``--bootstrap-password`` that password is used as given. Otherwise one
    is generated and written to ``password_file`` (mode 0600); the admin is then
    asked to change it (``must_change_password``).
    """
    async with db.read() as session:
        admins = (await session.execute(select(func.count()).select_from(User).where(User.role == "admin"))).scalar()
    if admins:
        return
    generated = bootstrap_password is None
    password = secrets.new_password() if generated else bootstrap_password
    assert password is not None
    password_hash = await secrets.hash_password(password)
    async with db.transaction() as session:
        session.add(
            User(
                username=ADMIN_USERNAME,
                password_hash=password_hash,
                role="admin",
                must_change_password=generated,
            )
        )
    if generated:
        write_secret_file(password_file, password)
        logger.info("created user admin; its password is in %s", password_file)


async def reset_admin_password(db: Database, password_file: Path) -> Path:
    """Give user ``admin`` a new generated password, written to ``password_file`` (mode 0600), which
    must be changed at the next sign-in; every session of the admin ends. The admin is created if
    it was deleted. For a locked-out operator with access to the server's machine."""
    password = secrets.new_password()
    password_hash = await secrets.hash_password(password)
    async with db.transaction() as session:
        admin = (await session.execute(select(User).where(User.username == ADMIN_USERNAME))).scalar_one_or_none()
        if admin is None:
            session.add(
                User(username=ADMIN_USERNAME, password_hash=password_hash, role="admin", must_change_password=True)
            )
        else:
            admin.password_hash = password_hash
            admin.role = "admin"
            admin.must_change_password = True
            await session.execute(delete(UserSession).where(UserSession.user_id == admin.id))
            record_credentials_change(session)
    write_secret_file(password_file, password)
    logger.info("reset the password of user admin; the new one is in %s", password_file)
    return password_file


async def login(db: Database, username: str, password: str, throttle: LoginThrottle, address: str | None) -> str:
    """Check a password and open a session; returns the session token.

    ``throttle`` refuses the attempt (429) while the username or the client ``address`` is locked
    out, before any password work; the outcome is counted there."""
    throttle.begin(username, address)
    verdict: bool | None = None
    try:
        user = await _verified_user(db, username, password)
        verdict = user is not None
    finally:
        throttle.end(username, address, succeeded=verdict)
    if user is None:
        raise Unauthorized("wrong username or password")
    return await _open_session(db, user)


async def _verified_user(db: Database, username: str, password: str) -> User | None:
    """The user, if the password is theirs. An unknown name costs the same argon2 check (against a
    dummy hash) and gets the same answer as a wrong password, so neither reveals which names exist."""
    async with db.read() as session:
        user = (await session.execute(select(User).where(User.username == username))).scalar_one_or_none()
    stored = user.password_hash if user else await _dummy_hash()
    if not await secrets.verify_password(stored, password) or user is None:
        return None
    return user


async def _open_session(db: Database, user: User) -> str:
    token = secrets.new_session_token()
    async with db.transaction() as session:
        # Expired logins of this user are of no use to anyone: drop them while we are here.
        await session.execute(
            delete(UserSession).where(UserSession.user_id == user.id, UserSession.expires_at <= utcnow())
        )
        session.add(
            UserSession(token_hash=secrets.sha256(token), user_id=user.id, expires_at=utcnow() + SESSION_LIFETIME)
        )
    return token


_dummy: list[str] = []


async def _dummy_hash() -> str:
    if not _dummy:
        _dummy.append(await secrets.hash_password(secrets.new_password()))
    return _dummy[0]


async def logout(db: Database, token: str) -> None:
    async with db.transaction() as session:
        await session.execute(delete(UserSession).where(UserSession.token_hash == secrets.sha256(token)))
        record_credentials_change(session)


async def change_own_password(
    db: Database, principal: Principal, current: str, new: str, keep_session: str | None = None
) -> None:
    """Change the caller's password. Every other session of the user ends (someone who learned the old
    password is logged out with it); ``keep_session``, the session token the change came with, stays."""
    assert principal.user_id is not None
    async with db.read() as session:
        user = await session.get(User, principal.user_id)
    if user is None:
        raise NotFound("your user no longer exists")
    if not await secrets.verify_password(user.password_hash, current):
        raise Unauthorized("current password is wrong")
    if current == new:
        raise InvalidInput("the new password must differ from the current one", field="new_password")
    new_hash = await secrets.hash_password(new)
    async with db.transaction() as session:
        row = await session.get(User, principal.user_id)
        if row is None:
            raise NotFound("your user no longer exists")
        row.password_hash = new_hash
        row.must_change_password = False
        others = delete(UserSession).where(UserSession.user_id == row.id)
        if keep_session is not None:
            others = others.where(UserSession.token_hash != secrets.sha256(keep_session))
        await session.execute(others)
        record_credentials_change(session)


async def list_users(db: Database) -> list[UserPublic]:
    async with db.read() as session:
        rows = (await session.execute(select(User).order_by(User.id))).scalars().all()
    return [UserPublic.model_validate(row) for row in rows]


async def get_user(db: Database, user_id: int) -> UserPublic:
    async with db.read() as session:
        row = await session.get(User, user_id)
    if row is None:
        raise NotFound(f"user {user_id} does not exist")
    return UserPublic.model_validate(row)


async def create_user(db: Database, body: UserCreate) -> UserPublic:
    password_hash = await secrets.hash_password(body.password)
    try:
        async with db.transaction() as session:
            user = User(
                username=body.username,
                password_hash=password_hash,
                role=body.role.value,
                must_change_password=False,
            )
            session.add(user)
            await session.flush()
            public = UserPublic.model_validate(user)
    except IntegrityError as exc:
        raise Conflict(f"a user named {body.username!r} already exists", field="username") from exc
    return public


async def update_user(db: Database, principal: Principal, user_id: int, body: UserUpdate) -> UserPublic:
    password_hash = await secrets.hash_password(body.password) if body.password is not None else None
    async with db.transaction() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise NotFound(f"user {user_id} does not exist")
        if body.role is not None and body.role != Role(user.role):
            if user.id == principal.user_id:
                raise Forbidden("you cannot change your own role; ask another admin")
            if user.role == "admin":
                await _keep_one_admin(session)
            user.role = body.role.value
        if password_hash is not None:
            user.password_hash = password_hash
            user.must_change_password = user.id != principal.user_id
            # Other logins of this user end: a reset password must lock out old sessions.
            await session.execute(delete(UserSession).where(UserSession.user_id == user.id))
        await session.flush()
        record_credentials_change(session)
        return UserPublic.model_validate(user)


async def delete_user(db: Database, principal: Principal, user_id: int) -> None:
    async with db.transaction() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise NotFound(f"user {user_id} does not exist")
        if user.id == principal.user_id:
            raise Forbidden("you cannot delete yourself")
        if user.role == "admin":
            await _keep_one_admin(session)
        await session.delete(user)
        record_credentials_change(session)


async def _keep_one_admin(session: AsyncSession) -> None:
    """Refuse to remove the last admin. The admin rows are locked (PostgreSQL), so two concurrent
    demotions cannot both see "two admins left"; SQLite write transactions are serialised anyway."""
    admins = (await session.execute(select(User.id).where(User.role == "admin").with_for_update())).all()
    if len(admins) <= 1:
        raise Conflict("this is the last admin; make another user admin first")
