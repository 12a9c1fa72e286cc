"""Forward one request to an engine, with one retry elsewhere when the engine cannot be reached.

The engine is called directly at its worker's address and port, through one pooled HTTP client per
server process. A request is retried once on another running instance when it failed before any
byte reached the client: the connection could not be made or broke before the response began, or
the engine answered 503 (loading, or no free slot). A streamed response is passed on as bytes as
they arrive; when the client goes away, the upstream request is closed, which makes llama-server
stop generating and free the slot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gpufleet.server.gateway.balancer import Balancer
from gpufleet.server.gateway.errors import GatewayError
from gpufleet.server.gateway.routing import Endpoint, Route
from gpufleet.server.gateway.stream_usage import StreamUsage, Usage, usage_of_body

logger = logging.getLogger(__name__)

ATTEMPTS = 2  # the first try and one retry on another instance
RETRIED_STATUS = 503
# Connection failures before any response byte: safe to send the request elsewhere.
UNREACHABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError)
JSON_HEADERS = {"content-type": "application/json", "accept-encoding": "identity"}
PASSED_HEADERS = ("content-type",)
INSTANCE_HEADER = "x-gpufleet-instance"  # names the instance that answered


@dataclass(frozen=True)
class Outcome:
    """How a forwarded request ended, for usage and metrics (called once, when it is over)."""

    status: int
    usage: Usage | None
    first_byte: float | None  # seconds from the start to the engine's first response bytes (streams)
    instance_id: int | None


Finished = Callable[[Outcome], None]


class Proxy:
    def __init__(self, balancer: Balancer, timeout: float) -> None:
        self.balancer = balancer
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=5.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=512, keepalive_expiry=30),
            trust_env=False,  # engines are reached directly, never through a proxy from the environment
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def forward(
        self, route: Route, path: str, body: bytes, *, stream: bool, strip_usage: bool, finished: Finished
    ) -> Response:
        """The engine's answer to ``body`` at ``path`` on one of ``route``'s instances.

        ``finished`` is called exactly once with the outcome: when the answer is complete, or, for a
        stream, when its last byte was sent or the client went away."""
        started = time.perf_counter()
        tried: list[int] = []
        failure = ""
        while len(tried) < ATTEMPTS:
            endpoint = self.balancer.pick(route, exclude=tried)
            if endpoint is None:
                break
            tried.append(endpoint.instance_id)
            self.balancer.acquire(endpoint)
            try:
                upstream = await self._send(endpoint, path, body)
            except UNREACHABLE as exc:
                self.balancer.release(endpoint)
                failure = f"instance {endpoint.instance_name} at {endpoint.url}: {_describe(exc)}"
                logger.warning("gateway: %s", failure)
                continue
            except httpx.TimeoutException as exc:
                self.balancer.release(endpoint)
                finished(Outcome(504, None, None, endpoint.instance_id))
                raise GatewayError(
                    504,
                    f"instance {endpoint.instance_name} did not answer in time ({_describe(exc)})",
                    "engine_timeout",
                ) from None
            except BaseException:
                self.balancer.release(endpoint)
                raise
            if upstream.status_code == RETRIED_STATUS and len(tried) < min(ATTEMPTS, len(route.endpoints)):
                await upstream.aclose()
                self.balancer.release(endpoint)
                failure = f"instance {endpoint.instance_name} answered 503 (busy or loading)"
                continue
            if stream and upstream.status_code == 200:
                return self._streamed(upstream, endpoint, started, strip_usage, finished)
            try:
                content = await upstream.aread()
            except httpx.HTTPError as exc:
                finished(Outcome(502, None, None, endpoint.instance_id))
                raise GatewayError(
                    502, f"instance {endpoint.instance_name} broke off its answer: {_describe(exc)}", "engine_error"
                ) from None
            finally:
                await upstream.aclose()
                self.balancer.release(endpoint)
            usage = usage_of_body(content) if upstream.status_code == 200 else None
            finished(Outcome(upstream.status_code, usage, None, endpoint.instance_id))
            return Response(content, status_code=upstream.status_code, headers=_passed(upstream, endpoint))
        finished(Outcome(502, None, None, None))
        raise GatewayError(
            502,
            f"no instance of model {route.model_name!r} could be reached (tried {len(tried)}): {failure}",
            "engine_unreachable",
        )

    async def _send(self, endpoint: Endpoint, path: str, body: bytes) -> httpx.Response:
        request = self.client.build_request("POST", endpoint.url + path, content=body, headers=JSON_HEADERS)
        return await self.client.send(request, stream=True)

    def _streamed(
        self, upstream: httpx.Response, endpoint: Endpoint, started: float, strip_usage: bool, finished: Finished
    ) -> StreamingResponse:
        scanner = StreamUsage(strip=strip_usage)
        first_byte: float | None = None
        status = 200
        ended = False

        async def end() -> None:
            """However the stream ends (done, client gone, cancelled, never started), the engine's
            response is closed, the request stops counting in flight and the outcome is reported, once."""
            nonlocal ended
            if ended:
                return
            ended = True
            await upstream.aclose()
            self.balancer.release(endpoint)
            finished(Outcome(status, scanner.usage, first_byte, endpoint.instance_id))

        async def relay() -> AsyncIterator[bytes]:
            nonlocal first_byte, status
            try:
                async for chunk in upstream.aiter_raw():
                    if first_byte is None:
                        first_byte = time.perf_counter() - started
                    passed = scanner.feed(chunk)
                    if passed:
                        yield passed
                rest = scanner.finish()
                if rest:
                    yield rest
            except httpx.HTTPError as exc:  # the response has begun: all that is left is to end it
                status = 502
                logger.warning("gateway: stream from %s broke off: %s", endpoint.instance_name, _describe(exc))
            finally:
                await end()

        headers = {**_passed(upstream, endpoint), "cache-control": "no-cache", "x-accel-buffering": "no"}
        return _EngineStream(relay(), end, headers=headers)


class _EngineStream(StreamingResponse):
    """A streaming response that runs ``end`` even when its body was never iterated."""

    def __init__(self, body: AsyncIterator[bytes], end: Callable[[], Awaitable[None]], headers: dict[str, str]) -> None:
        super().__init__(body, status_code=200, headers=headers)
        self._end = end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._end()


def _passed(upstream: httpx.Response, endpoint: Endpoint) -> dict[str, str]:
    """The engine's headers worth passing on, and which instance answered (for people debugging)."""
    headers = {name: upstream.headers[name] for name in PASSED_HEADERS if name in upstream.headers}
    headers[INSTANCE_HEADER] = endpoint.instance_name
    return headers


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
