"""Every operation of the management API, read from the app's own OpenAPI document."""

from __future__ import annotations

from gpufleet.server.app import create_app
from tests.support.server import RunningServer


def api_operations(server: RunningServer) -> list[tuple[str, str]]:
    """(METHOD, path template) for every ``/api`` operation."""
    schema = create_app(server.runtime).openapi()
    return sorted(
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        if path.startswith("/api")
        for method in operations
    )


def concrete(template: str, identifier: int = 1) -> str:
    """``/api/models/{model_id}`` → ``/api/models/1``."""
    return "/".join(str(identifier) if part.startswith("{") else part for part in template.split("/"))
