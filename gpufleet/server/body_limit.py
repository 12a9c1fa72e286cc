"""Request-body limits on every route, answered with 413 before the body is read in full.

A pure ASGI middleware (Starlette's ``BaseHTTPMiddleware`` would buffer and re-wrap every
request). It sits right inside ``AuthMiddleware``, so an anonymous caller of any route but login
still gets its 401 first, without a byte of its body read; for everyone else:

- a ``Content-Length`` over the route's limit is answered 413 at once, before the app runs;
- a body without one (chunked) is counted as it arrives: the moment it passes the limit the
  middleware answers 413 itself and tells the app the client has gone, so nothing buffers the
  rest. Before the response ends (and the server closes the connection) it reads and drops a
  little more of the upload (``DRAIN_BYTES``, ``DRAIN_SECONDS`` at most): closing a socket with
  unread data makes the kernel reset the connection and drop what it has not sent yet, the 413
  itself, and the client would see "connection reset" instead of the answer.

Limits, by path: ``/v1`` keeps the gateway's own (``gateway.service.MAX_BODY``), answered in
OpenAI's error shape; the routes through which workers report (registration, heartbeats, instance
transitions, model files) take at least ``WORKER_MAX_BODY``, since a large machine's device list
or an engine's command line is legitimately bigger than a person's request; every other route the
``--api-max-body-mib`` setting (1 MiB by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpufleet.common.units import MiB
from gpufleet.server.gateway.errors import error_response
from gpufleet.server.gateway.service import MAX_BODY as GATEWAY_MAX_BODY

WORKER_MAX_BODY = 8 * MiB
DRAIN_BYTES = 4 * MiB  # after a 413 mid-upload, read at most this much more before closing …
DRAIN_SECONDS = 2.0  # … for at most this long
WORKER_REPORTS = re.compile(
    r"^/api/(workers/register|workers/[^/]+/heartbeat|model-files"
    r"|model-instances/[^/]+/(transition|release|rpc-server))/?$"
)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, api_max_body: int) -> None:
        self.app = app
        self.api_max_body = api_max_body

    def limit(self, path: str) -> tuple[int, str]:
        """The largest body ``path`` accepts, in bytes, and what to call that limit in a message."""
        if path == "/v1" or path.startswith("/v1/"):
            return GATEWAY_MAX_BODY, "/v1"  # the gateway's own: its read_body enforces it again
        if WORKER_REPORTS.match(path):
            return max(self.api_max_body, WORKER_MAX_BODY), "worker reports; send a smaller body"
        return self.api_max_body, "/api; send a smaller body (the server sets it with --api-max-body-mib)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, name = self.limit(scope["path"])
        respond = _responder(scope, limit, name)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await respond(send, None)  # before any body is read: the client may still be waiting to send it
            return
        received = 0
        started = refused = answered = False

        async def counted_receive() -> Message:
            nonlocal received, refused, answered
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:  # else the app answers already: let it finish, with no more body
                        answered = True
                        await respond(send, receive)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # we answered 413: what the app says after that is dropped
            started = True
            await send(message)

        await self.app(scope, counted_receive, guarded_send)


def _responder(scope: Scope, limit: int, name: str) -> Callable[[Send, Receive | None], Awaitable[None]]:
    async def respond(send: Send, upload: Receive | None) -> None:
        """Send the 413; with ``upload`` (a body already streaming in), drain a little of it before
        the response ends, so the answer is on the wire before the connection closes."""
        message = f"request body is larger than the {limit / MiB:g} MiB limit of {name}"
        response: Response
        if name == "/v1":
            response = error_response(413, message, "body_too_large")
        else:
            response = JSONResponse({"detail": message, "code": "body_too_large"}, status_code=413)
        response.headers["connection"] = "close"  # the rest of the body is never read

        await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body, "more_body": upload is not None})
        if upload is not None:
            await _drain(upload)
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    return respond


async def _drain(receive: Receive) -> None:
    """Read and drop the upload until it ends, ``DRAIN_BYTES`` or ``DRAIN_SECONDS``, whichever first."""
    drained = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_SECONDS):
            while drained < DRAIN_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    return
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server itself refuses a malformed one
    return None
