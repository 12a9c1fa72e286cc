"""``/v1``: the OpenAI-compatible routes. Thin: authenticate, hand the raw body to the gateway.

The caller was authenticated by ``AuthMiddleware`` (401 in OpenAI's shape otherwise). Bodies are
not validated here beyond what routing needs: the engine owns the OpenAI request schema, and its
own errors reach the client as they are. In the server, ``GatewayMiddleware`` (``asgi.py``)
answers the ``FORWARDED`` routes before FastAPI routes them, with the same ``Gateway.handle``;
they are declared here for the OpenAPI document and for any app without that middleware.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from gpufleet.server.gateway.service import Gateway
from gpufleet.server.principal import Principal

router = APIRouter(prefix="/v1", tags=["openai"])

# Routes that forward a JSON body to the engine's route of the same name.
FORWARDED = {
    "chat/completions": 'Chat completion (streamed with "stream": true), as OpenAI\'s API',
    "completions": 'Text completion (streamed with "stream": true), as OpenAI\'s API',
    "embeddings": "Embeddings of the input (models deployed from an embedding GGUF)",
    "rerank": "Relevance of documents to a query (reranker models)",
}
BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "required": ["model"]}}},
    }
}


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.runtime.gateway
    return gateway


def _principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


@router.get("/models")
async def list_models(request: Request) -> dict[str, Any]:
    """Deployments with at least one running instance that the caller's key may use."""
    return await _gateway(request).models(_principal(request))


@router.get("/models/{name:path}")
async def get_model(name: str, request: Request) -> dict[str, Any]:
    """One deployment the caller's key may use (404 in OpenAI's shape if there is none by that name)."""
    return await _gateway(request).model(_principal(request), name)


def _forwarding(route: str) -> Any:
    async def forward(request: Request) -> Response:
        return await _gateway(request).handle(_principal(request), route, await request.body())

    forward.__name__ = route.replace("/", "_")
    return forward


for _route, _summary in FORWARDED.items():
    router.add_api_route(f"/{_route}", _forwarding(_route), methods=["POST"], summary=_summary, openapi_extra=BODY_DOC)
