"""Who may call the worker's private routes: the server, with the bearer this worker's token gives it.

The worker makes a new random token at every start and sends it in its registration; the server
stores only its hash and presents ``Authorization: Bearer <HMAC of that hash under the cluster
token>`` when it calls the worker (``common.worker_api_token``; instance logs). A token per worker
and per run means a leaked bearer exposes only that worker, and only until it restarts; a copy of
the server's database exposes none. ``/healthz`` and ``/metrics`` stay open.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable

from fastapi import HTTPException, Request


def new_api_token() -> str:
    return secrets.token_urlsafe(32)


def require_server(api_token: str) -> Callable[[Request], None]:
    """A route dependency answering 401 unless the request carries ``api_token`` (constant-time compare)."""
    expected = api_token.encode()

    def dependency(request: Request) -> None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise HTTPException(
                401,
                "this worker route is for the gpufleet server only: send 'Authorization: Bearer <worker API token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(presented.strip().encode(), expected):
            raise HTTPException(
                401,
                "invalid worker API token (the worker makes a new one at each start and sends it when it registers)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return dependency
