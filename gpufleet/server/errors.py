"""The one place where errors become HTTP responses.

Every error body under ``/api`` is ``{"detail": "<what is wrong and what to do>"}``; validation
errors add ``"errors": [{"field", "message"}]``. Under ``/v1`` (the OpenAI-compatible gateway)
errors have OpenAI's shape ``{"error": {"message", "type", "code"}}``, which OpenAI SDKs read.
No traceback ever reaches a client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gpufleet.common.errors import GpufleetError
from gpufleet.server.gateway.errors import GatewayError, error_response
from gpufleet.server.login_throttle import TooManyAttempts

logger = logging.getLogger(__name__)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def _message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        return "unknown field (check the spelling; see /openapi.json for the accepted fields)"
    if error.get("type") == "missing":
        return "field required"
    return message


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    for error in errors:
        if error.get("type") == "json_invalid":
            ctx = error.get("ctx") or {}
            return JSONResponse(
                status_code=400,
                content={"detail": f"request body is not valid JSON: {ctx.get('error', 'parse error')}"},
            )
    items = [{"field": _field(e.get("loc", ())), "message": _message(e)} for e in errors]
    summary = "; ".join(f"{i['field']}: {i['message']}" for i in items[:5])
    return JSONResponse(status_code=422, content={"detail": summary, "errors": items})


async def _gpufleet(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GpufleetError)
    body: dict[str, Any] = {"detail": exc.message, "code": exc.code}
    if exc.field:
        body["errors"] = [{"field": exc.field, "message": exc.message}]
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
    if isinstance(exc, TooManyAttempts):
        headers["Retry-After"] = str(exc.retry_after)
    return JSONResponse(status_code=exc.status_code, content=body, headers=headers or None)


def _openai(request: Request) -> bool:
    path = request.url.path
    return path == "/v1" or path.startswith("/v1/")


async def _gateway(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return exc.response()


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if _openai(request):
        if exc.status_code == 404:
            return error_response(404, f"no such route {request.url.path}; see /openapi.json", "unknown_route")
        if exc.status_code == 405:
            return error_response(405, f"{request.method} is not allowed on {request.url.path}", "method_not_allowed")
        return error_response(exc.status_code, str(exc.detail), "http_error")
    detail = exc.detail
    if exc.status_code == 404 and detail == "Not Found":
        detail = "no such route; see /openapi.json for the API"
    elif exc.status_code == 405:
        detail = "method not allowed on this route; see /openapi.json"
    return JSONResponse(status_code=exc.status_code, content={"detail": detail}, headers=exc.headers)


async def _database_lost(request: Request, exc: Exception) -> Response:
    """The database could not be reached or dropped the connection: 503, so callers (workers above
    all) know to retry or fail over to another server, not that the request was wrong."""
    assert isinstance(exc, DBAPIError | ConnectionRefusedError)
    if isinstance(exc, DBAPIError) and not (
        exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    ):
        return await _unexpected(request, exc)
    logger.warning("database unavailable in %s %s: %s", request.method, request.url.path, str(exc).splitlines()[0])
    message = "the database is unavailable; try again shortly"
    if _openai(request):
        return error_response(503, message, "database_unavailable")
    return JSONResponse(status_code=503, content={"detail": message, "code": "database_unavailable"})


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    if _openai(request):
        return error_response(500, "internal error; the server log has the details", "internal_error")
    return JSONResponse(status_code=500, content={"detail": "internal error; the server log has the details"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(GpufleetError, _gpufleet)
    app.add_exception_handler(GatewayError, _gateway)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(DBAPIError, _database_lost)
    app.add_exception_handler(ConnectionRefusedError, _database_lost)
    app.add_exception_handler(Exception, _unexpected)
