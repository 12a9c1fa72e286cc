"""The gateway's inference routes served straight from ASGI, ahead of FastAPI's routing.

Per request, FastAPI's route matching, dependency solving and request objects cost about as much
as everything the gateway itself does (profiled in BENCHMARKS.md). The OpenAI routes need none of
it: they take a raw body and hand it on. So this middleware, placed right inside
``AuthMiddleware`` (which has resolved the caller), answers ``POST /v1/<route>`` itself; every
other request goes on to FastAPI. ``routes.py`` declares the same routes for the OpenAPI document
and serves them identically should a request get past this middleware.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpufleet.server.gateway.errors import GatewayError, error_response
from gpufleet.server.gateway.routes import FORWARDED
from gpufleet.server.gateway.service import MAX_BODY, Gateway
from gpufleet.server.principal import Principal

logger = logging.getLogger(__name__)

FORWARDED_PATHS = {f"/v1/{route}": route for route in FORWARDED}


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, gateway_factory: Callable[[], Gateway]) -> None:
        self.app = app
        self.gateway_factory = gateway_factory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = FORWARDED_PATHS.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        principal: Principal = scope["state"]["principal"]  # set by AuthMiddleware, or it answered 401
        try:
            body = await read_body(receive)
            response = await self.gateway_factory().handle(principal, route, body, lambda: disconnected(receive))
        except GatewayError as error:
            response = error.response()
        except Exception:  # the one place a /v1 request may fail unforeseen: answer in OpenAI's shape
            logger.exception("unhandled error in POST %s", scope["path"])
            response = error_response(500, "internal error; the server log has the details", "internal_error")
        await response(scope, receive, send)


async def disconnected(receive: Receive) -> None:
    """Return when the client closes its connection (the body was read: nothing else can arrive).

    Awaited only while the request waits for a slot, and cancelled before the response is sent,
    which then listens for the disconnect itself."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def read_body(receive: Receive) -> bytes:
    """The whole request body; 413 beyond ``MAX_BODY``, and nothing to answer if the client left."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise GatewayError(499, "the client closed the connection before sending its request", "client_gone")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise GatewayError(413, f"request body is larger than {MAX_BODY // (1024 * 1024)} MiB", "body_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
