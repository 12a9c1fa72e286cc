"""A constant-time OpenAI-shaped upstream for the gateway benchmark: it answers at once.

A bare ASGI app under uvicorn (httptools, uvloop), so the upstream costs as little as possible
and what the benchmark measures is what sits in front of it. ``POST /v1/chat/completions``
answers a fixed completion with ``usage``; with ``"stream": true`` it sends ``--chunks`` SSE
chunks, then a usage chunk when ``stream_options.include_usage`` is set, then ``[DONE]``.
``GET /healthz`` answers too, so it can stand in for a worker's port when gpufleet probes it.

    python -m benchmarks.gateway_upstream --port 18000 --chunks 100
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import uvicorn

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
).encode()
CHUNK = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":0,"model":"bench",'
    b'"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":null}]}\n\n'
)
LAST = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":0,"model":"bench",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\n\n'
)
DONE = b"data: [DONE]\n\n"


def usage_chunk(chunks: int) -> bytes:
    usage = {"prompt_tokens": 5, "completion_tokens": chunks, "total_tokens": 5 + chunks}
    body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "choices": [], "usage": usage}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def make_app(chunks: int) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if scope["method"] == "GET":
            await _send(send, 200, b"application/json", b'{"status":"ok"}')
            return
        request = json.loads(body or b"{}")
        if not request.get("stream"):
            await _send(send, 200, b"application/json", COMPLETION)
            return
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for _ in range(chunks - 1):
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        tail = LAST
        if (request.get("stream_options") or {}).get("include_usage"):
            tail += usage_chunk(chunks)
        await send({"type": "http.response.body", "body": tail + DONE})

    return app


async def read_body(receive: Any) -> bytes:
    """The whole request body of an ASGI request."""
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


async def _send(send: Any, status: int, kind: bytes, payload: bytes) -> None:
    headers = [(b"content-type", kind), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=100)
    args = parser.parse_args()
    uvicorn.run(
        make_app(args.chunks), host="127.0.0.1", port=args.port, log_level="warning", access_log=False, lifespan="off"
    )


if __name__ == "__main__":
    main()
