"""Typed errors of the product.

Services raise these; the server maps them to HTTP in exactly one place
(``gpufleet.server.errors``). Every message is written for the person who sent
the request: it says what is wrong and, where possible, what to do instead.
"""

from __future__ import annotations


class GpufleetError(Exception):
    """Base of every error that carries a user-facing message."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(GpufleetError):
    """The request is well-formed but a value is not acceptable (HTTP 422)."""

    status_code = 422
    code = "invalid_input"


class NotFound(GpufleetError):
    status_code = 404
    code = "not_found"


class Conflict(GpufleetError):
    """The request clashes with current state: duplicate name, stale version (HTTP 409)."""

    status_code = 409
    code = "conflict"


class Unauthorized(GpufleetError):
    status_code = 401
    code = "unauthorized"


class Forbidden(GpufleetError):
    status_code = 403
    code = "forbidden"


class InvalidTransition(Conflict):
    """An instance state change that the lifecycle does not allow, or that lost a race."""

    code = "invalid_transition"


class BadGateway(GpufleetError):
    """A worker the server had to call could not be reached or did not answer properly (HTTP 502)."""

    status_code = 502
    code = "bad_gateway"
