"""Typed errors of the product: the bases every error of gpufleet derives from.

Each area declares its own errors next to its code (``estimate.gguf.GGUFError``,
``worker.engines.binaries.EngineUnavailable`` …) as subclasses of these bases, so that two
places alone turn them into words for people: ``server.errors`` maps them to HTTP (status and
``code`` from the class) and ``cli.errors`` to one error line. Every message is written for the
person who sent the request or ran the command: it says what is wrong and, where possible, what
to do instead. An error that also subclasses ``ValueError`` does so because callers written
against the standard library catch it that way (parsers, validators).
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


class Unavailable(GpufleetError):
    """Something the operation needs is not there now (a port, an engine binary, a package) (HTTP 503)."""

    status_code = 503
    code = "unavailable"
