"""Load for the gateway benchmark, in a process of its own: N requests at a given concurrency.

Prints one JSON object: requests, errors, seconds, per-request latencies (p50/p99, ms), and for
streams the chunks received per second. Bounded in count (``--requests``) and time
(``--max-seconds``): it stops at whichever comes first.

    python -m benchmarks.gateway_load --url http://127.0.0.1:8080/v1/chat/completions --key KEY \
        --concurrency 32 --requests 2000 [--stream]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx

BODY = {"model": "bench", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(
    url: str, key: str, concurrency: int, requests: int, max_seconds: float, stream: bool
) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {**BODY, "stream": stream}
    latencies: list[float] = []
    errors = 0
    chunks = 0
    issued = 0
    deadline = time.perf_counter() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, timeout=60, limits=limits, trust_env=False) as client:

        async def one() -> None:
            nonlocal errors, chunks
            started = time.perf_counter()
            try:
                if stream:
                    async with client.stream("POST", url, json=body) as response:
                        async for line in response.aiter_lines():
                            if line.startswith("data: ") and line != "data: [DONE]":
                                chunks += 1
                        ok = response.status_code == 200
                else:
                    response = await client.post(url, json=body)
                    ok = response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "ok"
            except httpx.HTTPError:
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

        for _ in range(min(concurrency, 4)):  # warm the connections up
            await one()
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
    result = asyncio.run(run(args.url, args.key, args.concurrency, args.requests, args.max_seconds, args.stream))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
