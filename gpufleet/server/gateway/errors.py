"""Errors of the gateway, in OpenAI's shape: ``{"error": {"message", "type", "code"}}``.

Clients of ``/v1`` are OpenAI SDKs: they read ``error.message`` and branch on the status code,
so every failure under ``/v1`` (bad key, unknown model, limits, engine down) is answered this
way, and the message says what to do about it.
"""

from __future__ import annotations

import json

from starlette.responses import Response

from gpufleet.common.errors import GpufleetError

# OpenAI's error ``type`` for each status the gateway answers with.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "service_unavailable",
    504: "timeout",
}


class GatewayError(GpufleetError):
    """A request the gateway answers itself, with ``status`` and a message for the caller, in
    OpenAI's shape (``server.errors`` gives it its own handler)."""

    def __init__(self, status: int, message: str, code: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = self.status_code = status
        self.code = code
        self.retry_after = retry_after

    def response(self) -> Response:
        return error_response(self.status, self.message, self.code, retry_after=self.retry_after)


def error_body(status: int, message: str, code: str) -> bytes:
    kind = ERROR_TYPES.get(status, "api_error")
    return json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()


def error_response(status: int, message: str, code: str, *, retry_after: int | None = None) -> Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return Response(
        error_body(status, message, code), status_code=status, media_type="application/json", headers=headers
    )
