"""The least a Python gateway can do: forward each request to the upstream and its answer back.

A reference for ``benchmarks/gateway.py``: the same server and client libraries gpufleet's gateway
uses (uvicorn with httptools/uvloop, aiohttp), with no authentication, routing, limits, usage or
metrics. The gap between it and the upstream called directly is the cost of a second HTTP hop in
Python on this machine; the gap between it and gpufleet is what gpufleet's own work costs.

    python -m benchmarks.gateway_bare_proxy --port 18001 --upstream http://127.0.0.1:18000
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import uvicorn

from benchmarks.gateway_upstream import read_body


def make_app(upstream: str) -> Any:
    session: aiohttp.ClientSession | None = None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal session
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if session is None:
            session = aiohttp.ClientSession(auto_decompress=False)
        headers = {"content-type": "application/json"}
        async with session.request(scope["method"], upstream + scope["path"], data=body, headers=headers) as answer:
            await send(
                {
                    "type": "http.response.start",
                    "status": answer.status,
                    "headers": [(b"content-type", answer.headers.get("content-type", "").encode())],
                }
            )
            async for chunk in answer.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    uvicorn.run(
        make_app(args.upstream), host="127.0.0.1", port=args.port, log_level="warning", access_log=False, lifespan="off"
    )


if __name__ == "__main__":
    main()
