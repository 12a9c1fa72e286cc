"""Load for the gateway benchmark, in a process of its own: N requests at a given concurrency.

Prints one JSON object: requests, errors, seconds, per-request latencies (p50/p99, ms), and for
streams the chunks received per second. The client is aiohttp's: httpx's connection pool costs the
client more than the gateway costs at 32+ connections, and the load must not be the bottleneck.
Bounded in count (``--requests``) and time (``--max-seconds``): it stops at whichever comes first.

    python -m benchmarks.gateway_load --url http://127.0.0.1:8080/v1/chat/completions --key KEY \
        --concurrency 32 --requests 2000 [--stream]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import aiohttp
import uvloop

BODY = {"model": "bench", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(
    url: str, key: str, concurrency: int, requests: int, max_seconds: float, stream: bool
) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"} if key else {}
    headers.setdefault("content-type", "application/json")
    body = json.dumps({**BODY, "stream": stream}).encode()
    latencies: list[float] = []
    errors = 0
    chunks = 0
    issued = 0
    deadline = time.perf_counter() + max_seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as client:

        async def one() -> None:
            nonlocal errors, chunks
            started = time.perf_counter()
            try:
                async with client.post(url, data=body) as response:
                    if stream:
                        async for line in response.content:
                            if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
                                chunks += 1
                        ok = response.status == 200
                    else:
                        answer = json.loads(await response.read())
                        ok = response.status == 200 and answer["choices"][0]["message"]["content"] == "ok"
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

        async def worker() -> None:
            nonlocal issued
            while issued < requests and time.perf_counter() < deadline:
                issued += 1
                await one()

        await asyncio.gather(*(one() for _ in range(concurrency)))  # open the connections first
        latencies.clear()
        chunks = 0
        errors = 0
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    done = len(latencies)
    return {
        "requests": done,
        "errors": errors,
        "seconds": seconds,
        "rps": done / seconds if seconds else 0.0,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else None,
        "p99_ms": percentile(latencies, 0.99) * 1000 if latencies else None,
        "chunks_per_s": chunks / seconds if stream and seconds else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", default="")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    result = uvloop.run(run(args.url, args.key, args.concurrency, args.requests, args.max_seconds, args.stream))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
