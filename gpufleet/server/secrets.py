"""Credential formats and how each is stored.

- Passwords: argon2id (slow on purpose; only at login).
- Session tokens ``gfs_…``, worker credentials ``gfw_…`` and API keys
  ``gf_<key id>_<secret>`` carry 256 bits of randomness, so a plain SHA-256 is
  enough to store them and fast enough to check on every request; comparisons
  are constant-time.
- The cluster registration token is a shared secret compared in constant time.
- Engine API keys ``gfe_…`` are not stored at all: each instance's is derived from the cluster
  token (``engine_key``), so every server replica presents the same key for an instance without
  a shared table, and the worker running the instance is told it on its private route.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import weakref
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

SESSION_PREFIX = "gfs_"
WORKER_PREFIX = "gfw_"
API_KEY_PREFIX = "gf_"
ENGINE_KEY_PREFIX = "gfe_"

_hasher = PasswordHasher()
T = TypeVar("T")

# Each argon2 hash or check takes ``_hasher.memory_cost`` KiB (64 MiB) and a core for a while: at most
# one per core runs at a time, so a burst of logins waits its turn instead of growing the server by
# 64 MiB per request. One semaphore per event loop (asyncio primitives belong to one loop).
ARGON2_SLOTS = max(1, os.cpu_count() or 1)
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _argon2_slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(ARGON2_SLOTS)
    return slots


async def _in_argon2_slot(work: Callable[[], T]) -> T:
    """Run ``work`` in a thread while holding a slot until the thread ends. A caller cancelled
    meanwhile (a client that hung up) stops waiting, but the slot stays taken until the hashing
    really stops: otherwise hung-up logins would let more than one job per core run at once."""
    slots = _argon2_slots()
    await slots.acquire()
    try:
        job = asyncio.ensure_future(asyncio.to_thread(work))
    except BaseException:
        slots.release()
        raise

    def finished(done: asyncio.Future[T]) -> None:
        slots.release()
        if not done.cancelled():
            done.exception()  # retrieved: a caller that was cancelled no longer reads it

    job.add_done_callback(finished)
    return await asyncio.shield(job)


async def hash_password(password: str) -> str:
    return await _in_argon2_slot(lambda: _hasher.hash(password))


async def verify_password(password_hash: str, password: str) -> bool:
    def _verify() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await _in_argon2_slot(_verify)


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


def engine_key(cluster_token: str, instance_id: int) -> str:
    """The API key of one instance's engine: HMAC-SHA256 of the instance id under the cluster token.

    The cluster token is the cluster's root secret already (it lets a machine join and receive
    models); a key leaked from one engine opens no other instance's engine.
    """
    message = f"gpufleet engine key:{instance_id}".encode()
    return ENGINE_KEY_PREFIX + hmac.new(cluster_token.encode(), message, hashlib.sha256).hexdigest()
