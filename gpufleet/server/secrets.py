"""Credential formats and how each is stored.

- Passwords: argon2id (slow on purpose; only at login).
- Session tokens ``gfs_…``, worker credentials ``gfw_…`` and API keys
  ``gf_<key id>_<secret>`` carry 256 bits of randomness, so a plain SHA-256 is
  enough to store them and fast enough to check on every request; comparisons
  are constant-time.
- The cluster registration token is a shared secret compared in constant time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

SESSION_PREFIX = "gfs_"
WORKER_PREFIX = "gfw_"
API_KEY_PREFIX = "gf_"

_hasher = PasswordHasher()


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    def _verify() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(_verify)


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def new_session_token() -> str:
    return SESSION_PREFIX + secrets.token_urlsafe(32)


def new_worker_credential() -> str:
    return WORKER_PREFIX + secrets.token_urlsafe(32)


def new_api_key() -> tuple[str, str, str]:
    """Returns (full key, key id, secret). The key id is public; the secret is shown once."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"{API_KEY_PREFIX}{key_id}_{secret}", key_id, secret


def split_api_key(key: str) -> tuple[str, str] | None:
    """``gf_<key id>_<secret>`` → (key id, secret), or None if it is not shaped like a key."""
    if not key.startswith(API_KEY_PREFIX):
        return None
    rest = key[len(API_KEY_PREFIX) :]
    key_id, sep, secret = rest.partition("_")
    if not sep or len(key_id) != 12 or not secret:
        return None
    return key_id, secret


def new_cluster_token() -> str:
    return secrets.token_hex(32)


def new_password() -> str:
    return secrets.token_urlsafe(18)
