"""The OpenAPI document says what the routes really answer: error bodies, statuses, credentials.

FastAPI documents only the success and a 422 in its own validation shape (``detail`` as an
array). gpufleet answers every ``/api`` error as ``server.errors`` writes it: ``{"detail":
"<text>", "code"?, "errors"?: [{"field", "message"}]}``, for validation as much as anything else,
and its routes can also answer 400 (malformed JSON), 401 (no valid credential: ``AuthMiddleware``),
403 (role check), 404 (path ids), 409 (conflicts on writes), 413 (``body_limit``), 429 (login
throttle) and 503 (database busy). ``document`` adds those to the generated document once, by
rules on each operation's shape, and declares how credentials arrive (``server.auth``): a bearer
token (session token, API key, worker credential or cluster token) or the session cookie. ``/v1``
answers errors in OpenAI's shape (``gateway.errors``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from gpufleet.server.auth import PUBLIC_API, SESSION_COOKIE

ERROR = "Error"
OPENAI_ERROR = "OpenAIError"
WRITES = {"post", "put", "patch", "delete"}

SCHEMAS: dict[str, dict[str, Any]] = {
    ERROR: {
        "title": ERROR,
        "type": "object",
        "description": "Every /api error: what is wrong and what to do; validation errors list the fields.",
        "required": ["detail"],
        "properties": {
            "detail": {"type": "string"},
            "code": {"type": "string"},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}},
        },
    },
    "FieldError": {
        "title": "FieldError",
        "type": "object",
        "required": ["field", "message"],
        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
    },
    OPENAI_ERROR: {
        "title": OPENAI_ERROR,
        "type": "object",
        "description": "Every /v1 error, in OpenAI's shape (OpenAI SDKs read error.message).",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "code": {"type": ["string", "null"]},
                },
            }
        },
    },
}

SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "A session token (from POST /api/auth/login), an API key (gf_…), a worker credential "
        "(gfw_…) or, to register a worker, the cluster token.",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The session cookie that POST /api/auth/login sets (the web UI uses it).",
    },
}

DESCRIPTIONS = {
    400: "The body is not valid JSON, or the request is malformed.",
    401: "No valid credential (or, at login, a wrong username or password).",
    403: "The credential's role may not call this route.",
    404: "No such resource.",
    409: "The request clashes with the current state (a duplicate name, a change that lost a race).",
    413: "The request body is larger than this route's limit.",
    422: "A value is not acceptable; `errors` names the fields.",
    429: "Too many failed logins for this username or from this address; retry after `Retry-After` seconds.",
    502: "A worker the server had to ask did not answer.",
    503: "Something the operation needs is not available now (the database is busy, …); retry.",
}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the generated document with ``document`` applied (once)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.update(SCHEMAS)
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if path.startswith("/api/"):
                _document_api(path, method, operation)
            elif path.startswith("/v1/"):
                _document_openai(method, operation)
    return schema


def _statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    public = (method.upper(), path) in PUBLIC_API
    has_body = "requestBody" in operation
    parameters = operation.get("parameters", [])
    statuses = {401, 503} | ({429} if public else {403})
    if has_body:
        statuses |= {400, 413, 422}
    if parameters:
        statuses.add(422)
    if any(p.get("in") == "path" for p in parameters):
        statuses.add(404)
    if method in WRITES and not public:
        statuses |= {404, 409, 422}
    if path.endswith("/logs"):
        statuses.add(502)  # read from the worker that runs the instance
    return statuses


def _document_api(path: str, method: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    for status in sorted(_statuses(path, method, operation)):
        response: dict[str, Any] = {
            "description": DESCRIPTIONS[status],
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR}"}}},
        }
        if status == 429:
            response["headers"] = {
                "Retry-After": {"required": True, "description": "Seconds to wait", "schema": {"type": "integer"}}
            }
        responses[str(status)] = response
    public = (method.upper(), path) in PUBLIC_API
    operation["security"] = [] if public else [{"bearer": []}, {"session": []}]


def _document_openai(method: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    statuses = {401, 403, 404, 429, 502, 503, 504} | ({400, 413, 422} if method in WRITES else set())
    if operation.get("parameters"):
        statuses.add(422)
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": DESCRIPTIONS.get(status, "The engine did not answer in time."),
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{OPENAI_ERROR}"}}},
        }
    operation["security"] = [{"bearer": []}]
