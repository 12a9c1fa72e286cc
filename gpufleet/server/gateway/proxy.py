"""Forward one request to an engine, with one retry elsewhere when the engine cannot be reached.

The engine is called directly at its worker's address and port, through one pooled HTTP client per
server process. That client is aiohttp's: on this path it costs a quarter of what httpx does per
request (measured in BENCHMARKS.md), and per-request cost is all a gateway adds.

Each request bears the instance's engine API key (``Authorization: Bearer``): engines refuse
requests without it, so the gateway's API keys, limits and usage cannot be bypassed.

A request is retried once on another running instance when it failed before any byte reached the
client: the connection could not be made or was dropped before the response began, or the engine
answered 503 (loading, or no free slot). A streamed response is passed on as bytes as they arrive;
when the client goes away, the connection to the engine is closed, which makes llama-server stop
generating and free the slot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gpufleet.server.gateway.errors import GatewayError
from gpufleet.server.gateway.routing import Endpoint, Route
from gpufleet.server.gateway.stream_usage import StreamUsage, Usage, usage_of_body
from gpufleet.server.gateway.waiting import WaitingLines

logger = logging.getLogger(__name__)

ATTEMPTS = 2  # the first try and one retry on another instance
RETRIED_STATUS = 503
CONNECT_TIMEOUT = 5.0  # seconds
# Idle pooled connections are dropped before llama-server drops them (its keep-alive is 5 s), so a
# request rarely meets a connection the engine has just closed.
KEEPALIVE = 4.0
# Failures before any response byte: safe to send the request elsewhere.
UNREACHABLE = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError,
)
JSON_HEADERS = {"content-type": "application/json"}
PASSED_HEADERS = ("content-type",)
INSTANCE_HEADER = "x-gpufleet-instance"  # names the instance that answered


@dataclass(frozen=True)
class Outcome:
    """How a forwarded request ended, for usage and metrics (reported once, when it is over)."""

    status: int
    usage: Usage | None
    first_byte: float | None  # seconds from the start to the engine's first response bytes (streams)
    instance_id: int | None


Finished = Callable[[Outcome], None]
# An instance's engine API key (``secrets.engine_key``): engines serve only requests that bear it.
EngineKey = Callable[[int], str]


class Proxy:
    def __init__(self, lines: WaitingLines, timeout: float, engine_key: EngineKey) -> None:
        self.lines = lines
        self.timeout = timeout
        self.engine_key = engine_key
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The pooled client, made on first use (it belongs to the running event loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=self.timeout),
                auto_decompress=False,
                # one session serves every user: a cookie an engine set must never ride along on others' requests
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,  # engines are reached directly, never through a proxy from the environment
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def forward(
        self,
        route: Route,
        first: Endpoint,
        path: str,
        body: bytes,
        *,
        stream: bool,
        strip_usage: bool,
        finished: Finished,
        started: float | None = None,
    ) -> Response:
        """The engine's answer to ``body`` at ``path``, from ``first`` (a slot already taken for this
        request, ``WaitingLines.take``) or, on a retry, another instance with a free slot.

        ``finished`` is called exactly once with the outcome: when the answer is complete, or, for a
        stream, when its last byte was sent or the client went away. ``started`` (``perf_counter``)
        is when the request arrived, for the first byte's time; default now."""
        started = time.perf_counter() if started is None else started
        tried: list[int] = []
        failure = ""
        endpoint: Endpoint | None = first
        while endpoint is not None:
            tried.append(endpoint.instance_id)
            try:
                headers = {**JSON_HEADERS, "authorization": f"Bearer {self.engine_key(endpoint.instance_id)}"}
                upstream = await self.session.post(endpoint.url + path, data=body, headers=headers)
            except UNREACHABLE as exc:
                self.lines.balancer.unreachable(endpoint)
                logger.warning("gateway: instance %s at %s: %s", endpoint.instance_name, endpoint.url, _describe(exc))
                failure = f"instance {endpoint.instance_name}: {type(exc).__name__}"
                endpoint = self._next(route, tried, endpoint)
                continue
            except TimeoutError as exc:
                self._release(route, endpoint)
                finished(Outcome(504, None, None, endpoint.instance_id))
                raise GatewayError(504, _late(endpoint, exc), "engine_timeout") from None
            except BaseException:
                self._release(route, endpoint)
                raise
            if upstream.status == RETRIED_STATUS and len(tried) < min(ATTEMPTS, len(route.endpoints)):
                upstream.release()
                failure = f"instance {endpoint.instance_name} answered 503 (busy or loading)"
                endpoint = self._next(route, tried, endpoint)
                continue
            if upstream.status == 401:  # not the client's fault: the engine holds another key than ours
                upstream.release()
                self._release(route, endpoint)
                finished(Outcome(502, None, None, endpoint.instance_id))
                logger.error(
                    "gateway: instance %s refused its engine key: its engine was started under another cluster "
                    "token; restart its worker to restart the engine with its key",
                    endpoint.instance_name,
                )
                raise GatewayError(502, f"instance {endpoint.instance_name} refused the gateway", "engine_error")
            if stream and upstream.status == 200 and upstream.content_type == "text/event-stream":
                return self._streamed(route, upstream, endpoint, started, strip_usage, finished)
            try:
                content = await upstream.read()
            except TimeoutError as exc:
                finished(Outcome(504, None, None, endpoint.instance_id))
                raise GatewayError(504, _late(endpoint, exc), "engine_timeout") from None
            except aiohttp.ClientError as exc:
                finished(Outcome(502, None, None, endpoint.instance_id))
                logger.warning("gateway: instance %s broke off its answer: %s", endpoint.instance_name, _describe(exc))
                raise GatewayError(
                    502,
                    f"instance {endpoint.instance_name} broke off its answer ({type(exc).__name__})",
                    "engine_error",
                ) from None
            finally:
                upstream.release()
                self._release(route, endpoint)
            usage = usage_of_body(content) if upstream.status == 200 else None
            finished(Outcome(upstream.status, usage, None, endpoint.instance_id))
            return Response(content, status_code=upstream.status, headers=_passed(upstream, endpoint))
        finished(Outcome(502, None, None, None))
        raise GatewayError(
            502,
            f"no instance of model {route.model_name!r} could be reached (tried {len(tried)}): {failure}",
            "engine_unreachable",
        )

    def _next(self, route: Route, tried: list[int], current: Endpoint) -> Endpoint | None:
        """The retry's slot, given the one ``current`` holds: another instance's if one is free,
        else ``current`` again, its slot kept (a pooled connection the engine had closed); None, with
        the slot released, after ``ATTEMPTS``.

        The next slot is taken before ``current``'s is released: a freed slot goes to the next request
        waiting in line at once, and this request, which has had its turn, would find none left."""
        if len(tried) >= ATTEMPTS:
            self._release(route, current)
            return None
        other = self.lines.take_now(route, exclude=tried)
        if other is None:
            return current
        self._release(route, current)
        return other

    def _release(self, route: Route, endpoint: Endpoint) -> None:
        self.lines.release(route.model_id, endpoint)

    def _streamed(
        self,
        route: Route,
        upstream: aiohttp.ClientResponse,
        endpoint: Endpoint,
        started: float,
        strip_usage: bool,
        finished: Finished,
    ) -> StreamingResponse:
        scanner = StreamUsage(strip=strip_usage)
        first_byte: float | None = None
        status = 200
        complete = False
        ended = False

        async def end() -> None:
            """However the stream ends (done, client gone, cancelled, never started), the engine's
            connection is released (closed unless the answer was complete), the request stops
            counting in flight, and the outcome is reported: once."""
            nonlocal ended
            if ended:
                return
            ended = True
            if complete:
                upstream.release()
            else:
                upstream.close()  # tells llama-server the client is gone: it stops generating
            self._release(route, endpoint)
            finished(Outcome(status, scanner.usage or scanner.lower_bound(), first_byte, endpoint.instance_id))

        async def relay() -> AsyncIterator[bytes]:
            nonlocal first_byte, status, complete
            try:
                async for chunk in upstream.content.iter_any():
                    if first_byte is None:
                        first_byte = time.perf_counter() - started
                    passed = scanner.feed(chunk)
                    if passed:
                        yield passed
                complete = True
                rest = scanner.finish()
                if rest:
                    yield rest
            except (aiohttp.ClientError, TimeoutError) as exc:  # the response has begun: all left is to end it
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


def _passed(upstream: aiohttp.ClientResponse, endpoint: Endpoint) -> dict[str, str]:
    """The engine's headers worth passing on, and which instance answered (for people debugging)."""
    headers = {name: upstream.headers[name] for name in PASSED_HEADERS if name in upstream.headers}
    headers[INSTANCE_HEADER] = endpoint.instance_name
    return headers


def _late(endpoint: Endpoint, exc: BaseException) -> str:
    """What the client is told (no addresses: those go to the server log)."""
    logger.warning("gateway: instance %s at %s timed out: %s", endpoint.instance_name, endpoint.url, _describe(exc))
    return f"instance {endpoint.instance_name} did not answer in time; see GPUFLEET_GATEWAY_TIMEOUT"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
