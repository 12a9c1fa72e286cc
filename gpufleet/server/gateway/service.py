"""The gateway's request path: who may call, which deployment, limits, then the engine.

One ``Gateway`` per server runtime holds what the hot path needs in memory: the routing table,
the balancer's in-flight counts, the per-key rate limiter, the usage recorder and one pooled HTTP
client. A request reads the database only when the routing table is stale, or on an error path
(a 503 reads the instances' states to say why).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from starlette.responses import Response

from gpufleet.common.clock import utcnow
from gpufleet.db.session import Database
from gpufleet.db.tables import ModelInstance
from gpufleet.server.gateway.balancer import Balancer
from gpufleet.server.gateway.errors import GatewayError
from gpufleet.server.gateway.limits import RequestRateLimiter
from gpufleet.server.gateway.load import LoadTracker
from gpufleet.server.gateway.metrics import GatewayMetrics
from gpufleet.server.gateway.not_running import InstanceStatus, not_running_message
from gpufleet.server.gateway.on_demand import OnDemandLoads
from gpufleet.server.gateway.proxy import EngineKey, Outcome, Proxy
from gpufleet.server.gateway.routing import Endpoint, Route, RoutingTable
from gpufleet.server.gateway.usage import UsageRecorder, seconds_until_tomorrow
from gpufleet.server.gateway.waiting import ClientGone, LineFull, WaitedTooLong, WaitingLines
from gpufleet.server.principal import Principal, PrincipalKind

logger = logging.getLogger(__name__)

MAX_BODY = 32 * 1024 * 1024  # bytes; larger requests get 413
STREAMED_ROUTES = frozenset({"chat/completions", "completions"})  # the routes that answer in SSE when asked
CALLERS = (PrincipalKind.ADMIN, PrincipalKind.USER)
UNKNOWN_MODEL = "-"  # the metrics label of requests that named no deployment
WAITING_REFRESH = 0.5  # seconds between looks for new instances while requests wait, without a change seen
QUEUE_FULL_RETRY = 2  # seconds, the Retry-After of a 429 for a full line
ClientGoneWait = Callable[[], Awaitable[object]] | None


@dataclass(frozen=True)
class Call:
    """One parsed ``/v1`` request: the route it came in on, the deployment it names, its body."""

    route: str  # e.g. "chat/completions"
    model: str
    body: bytes  # what is sent to the engine
    stream: bool
    strip_usage: bool  # usage was added for counting; the client did not ask for it


class Gateway:
    def __init__(self, db: Database, timeout: float, engine_key: EngineKey, server_id: str = "") -> None:
        self.db = db
        self.routes = RoutingTable(db)
        self.balancer = Balancer()
        self.lines = WaitingLines(self.balancer)
        self.load = LoadTracker(db, server_id or secrets.token_hex(8), self.lines)
        self.limiter = RequestRateLimiter()
        self.usage = UsageRecorder(db)
        self.metrics = GatewayMetrics()
        self.lines.waited = lambda route, seconds: self.metrics.child(
            self.metrics.queue_wait, route.model_name
        ).observe(seconds)
        self.proxy = Proxy(self.lines, timeout, engine_key)
        self.loads = OnDemandLoads(db, self.metrics)
        self._refresher: asyncio.Task[None] | None = None
        self._shown_queued: set[str] = set()  # models whose queued gauge was set above 0
        self._routing_changed = asyncio.Event()
        self.routes.stale_now = self._routing_changed.set

    def start(self) -> None:
        self.usage.start()
        self.load.start()
        self._refresher = asyncio.create_task(self._refresh_waiting(), name="gateway-waiting-refresh")

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
            self._refresher = None
        await self.load.stop()
        await self.usage.stop()
        await self.proxy.aclose()

    async def _refresh_waiting(self) -> None:
        """While requests wait, hand them the slots of instances that start (e.g. loaded for them).

        The routing table is reloaded only when a committed change made it stale, so each round costs
        a query only when something changed."""
        while True:
            with contextlib.suppress(TimeoutError):  # woken by a routing change, else a look each interval
                await asyncio.wait_for(self._routing_changed.wait(), WAITING_REFRESH)
            self._routing_changed.clear()
            if not self.lines.waiting_models():
                for name in self._shown_queued:  # the gauge falls back to 0 once the lines are empty
                    self.metrics.child(self.metrics.queued, name).set(0)
                self._shown_queued.clear()
                continue
            try:
                routes = await self.routes.routes()
            except Exception:  # the database may be away: waiters time out with a clear answer
                logger.exception("gateway: reloading the routes for waiting requests failed")
                continue
            self.lines.update(routes)
            by_id = {r.model_id: r for r in routes.values()}
            for waiting in self.lines.waiting_models():
                route = by_id.get(waiting)
                if route is None:
                    continue
                self.metrics.child(self.metrics.queued, route.model_name).set(self.lines.queued(waiting))
                self._shown_queued.add(route.model_name)
                if not route.endpoints and route.admission.loadable:
                    # asked again (at most every few seconds): the instance asked for may have been
                    # evicted or scaled away meanwhile, or the first ask skipped as a repeat
                    with contextlib.suppress(GatewayError):
                        await self.loads.ask(route)

    async def models(self, principal: Principal) -> dict[str, Any]:
        """``GET /v1/models``: deployments the caller may use that serve now or load when called."""
        caller(principal)
        routes = await self.routes.routes()
        data = [
            _model_object(r)
            for r in sorted(routes.values(), key=lambda r: r.model_name)
            if (r.endpoints or r.admission.loadable) and may_use(principal, r.model_name)
        ]
        return {"object": "list", "data": data}

    async def model(self, principal: Principal, name: str) -> dict[str, Any]:
        """``GET /v1/models/{name}``: one deployment the caller may use (running or not: 404 only if unknown)."""
        caller(principal)
        return _model_object(await self._named(principal, name))

    async def handle(
        self, principal: Principal, route: str, raw: bytes, client_gone: ClientGoneWait = None
    ) -> Response:
        """Serve one inference request; every failure is a ``GatewayError`` answered in OpenAI's shape.

        ``client_gone``: returns when the client closes its connection (a request waiting for a slot
        then leaves the line at once)."""
        started = time.perf_counter()
        label = UNKNOWN_MODEL
        try:
            caller(principal)
            call = parse(route, raw)
            deployment = await self._deployment(principal, call.model)
            label = deployment.model_name
            await self._admit(principal)
        except GatewayError as error:
            self.metrics.answered(label, route, error.status, time.perf_counter() - started)
            raise
        cold = not deployment.endpoints
        self.load.begin(deployment)
        try:
            deployment, endpoint = await self._slot(principal, deployment, client_gone)
        except BaseException as error:
            self.load.end(deployment)
            status = error.status if isinstance(error, GatewayError) else 499
            self.metrics.answered(label, route, status, time.perf_counter() - started)
            raise
        metrics = self.metrics
        in_flight = metrics.child(metrics.in_flight, label)
        in_flight.inc()

        reported = False

        def finished(outcome: Outcome) -> None:
            nonlocal reported
            reported = True
            in_flight.dec()
            self.load.end(deployment)
            elapsed = time.perf_counter() - started
            metrics.answered(label, route, outcome.status, elapsed)
            if cold and outcome.status < 400:
                metrics.child(metrics.cold_start, label).observe(outcome.first_byte or elapsed)
            if outcome.first_byte is not None:
                metrics.child(metrics.first_token, label).observe(outcome.first_byte)
            usage = outcome.usage
            if usage is not None:
                metrics.child(metrics.tokens, label, "prompt").inc(usage.prompt_tokens)
                metrics.child(metrics.tokens, label, "completion").inc(usage.completion_tokens)
            if outcome.instance_id is not None and principal.user_id is not None:
                self.usage.record(
                    principal.user_id,
                    principal.api_key_id,
                    label,
                    usage.prompt_tokens if usage else 0,
                    usage.completion_tokens if usage else 0,
                )

        try:
            return await self.proxy.forward(
                deployment,
                endpoint,
                "/v1/" + route,
                call.body,
                stream=call.stream,
                strip_usage=call.strip_usage,
                finished=finished,
                started=started,
            )
        except BaseException:
            if not reported:  # cancelled, or failed unforeseen: still counted, and no longer in flight
                finished(Outcome(499, None, None, None))
            raise

    async def _deployment(self, principal: Principal, name: str) -> Route:
        """The named deployment, if it serves now or loads when called (else 503 saying why)."""
        deployment = await self._named(principal, name)
        if not deployment.endpoints and not deployment.admission.loadable:
            states = await self._instance_states(deployment)
            raise GatewayError(503, not_running_message(principal, deployment.model_name, states), "model_not_running")
        return deployment

    async def _slot(
        self, principal: Principal, deployment: Route, client_gone: ClientGoneWait
    ) -> tuple[Route, Endpoint]:
        """A slot on one of the deployment's instances, waiting in its line when none is free, after
        asking for an instance to be loaded when none runs. Returns the newest route with it."""
        if not deployment.endpoints:
            await self.loads.ask(deployment)
        try:
            endpoint = await self.lines.take(deployment, caller_key(principal), client_gone)
        except LineFull:
            raise GatewayError(
                429,
                f"model {deployment.model_name!r} has {deployment.admission.max_queue} requests waiting already "
                "(its max_queue); retry shortly",
                "queue_full",
                retry_after=QUEUE_FULL_RETRY,
            ) from None
        except ClientGone:
            raise GatewayError(
                499, "the client closed the connection while its request waited", "client_gone"
            ) from None
        except WaitedTooLong:
            raise await self._waited_too_long(principal, deployment) from None
        if endpoint in deployment.endpoints:
            return deployment, endpoint  # taken at once, from the route in hand: nothing newer to read
        if not deployment.endpoints:
            self.loads.served(deployment)
        try:  # the slot is this request's now: released if it cannot go on
            current = (await self.routes.routes()).get(deployment.model_name)
        except BaseException:
            self.lines.release(deployment.model_id, endpoint)
            raise
        return (current if current is not None and current.model_id == deployment.model_id else deployment), endpoint

    async def _waited_too_long(self, principal: Principal, deployment: Route) -> GatewayError:
        waited = f"waited {deployment.admission.queue_timeout:g} s (the model's queue_timeout)"
        current = (await self.routes.routes()).get(deployment.model_name, deployment)
        retry = max(1, min(30, int(deployment.admission.queue_timeout)))
        if not current.endpoints:
            states = await self._instance_states(current)
            reason = not_running_message(principal, deployment.model_name, states)
            return GatewayError(
                503, f"{waited} for the model to load: {reason}", "model_not_running", retry_after=retry
            )
        return GatewayError(
            503,
            f"{waited} for a free slot: all {len(current.endpoints)} running instance(s) of model "
            f"{deployment.model_name!r} are busy with {current.admission.max_concurrent} request(s) each",
            "queue_timeout",
            retry_after=retry,
        )

    async def _named(self, principal: Principal, name: str) -> Route:
        if not may_use(principal, name):
            allowed = ", ".join(principal.allowed_models or ())
            raise GatewayError(
                403, f"this API key may not use model {name!r}; it may use: {allowed}", "model_not_allowed"
            )
        routes = await self.routes.routes()
        deployment = routes.get(name)
        if deployment is None:
            raise GatewayError(
                404, unknown_model_message(name, [n for n in routes if may_use(principal, n)]), "model_not_found"
            )
        return deployment

    async def _admit(self, principal: Principal) -> None:
        """Enforce the key's limits (429 with ``Retry-After``); session tokens have none."""
        key = principal.api_key_id
        if key is None:
            return
        if principal.tokens_per_day is not None:
            used = await self.usage.tokens_today(key)
            if used >= principal.tokens_per_day:
                raise GatewayError(
                    429,
                    f"this API key used {used} of its {principal.tokens_per_day} tokens today (UTC); "
                    "the limit starts over at midnight UTC",
                    "tokens_per_day_exceeded",
                    retry_after=seconds_until_tomorrow(utcnow()),
                )
        if principal.requests_per_minute is not None:
            wait = self.limiter.admit(key, principal.requests_per_minute)
            if wait is not None:
                raise GatewayError(
                    429,
                    f"this API key is limited to {principal.requests_per_minute} requests per minute; "
                    f"retry in {wait} s",
                    "requests_per_minute_exceeded",
                    retry_after=wait,
                )

    async def _instance_states(self, deployment: Route) -> list[InstanceStatus]:
        async with self.db.read() as session:
            rows = (
                await session.execute(
                    select(ModelInstance.name, ModelInstance.state, ModelInstance.state_message)
                    .where(ModelInstance.model_id == deployment.model_id)
                    .order_by(ModelInstance.id)
                )
            ).all()
        return [InstanceStatus(name, state, message) for name, state, message in rows]


def caller_key(principal: Principal) -> Hashable:
    """Whose turn a waiting request takes: its API key's, or its user's for a session token."""
    if principal.api_key_id is not None:
        return ("key", principal.api_key_id)
    return ("user", principal.user_id)


def _model_object(route: Route) -> dict[str, Any]:
    return {"id": route.model_name, "object": "model", "created": route.created_at, "owned_by": "gpufleet"}


def caller(principal: Principal) -> None:
    if principal.kind not in CALLERS:
        raise GatewayError(
            403, f"a {principal.kind.value} credential cannot call /v1; use a user's API key", "credential_not_allowed"
        )


def may_use(principal: Principal, model: str) -> bool:
    return principal.allowed_models is None or model in principal.allowed_models


def unknown_model_message(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if close:
        return f"model {name!r} does not exist; did you mean {', '.join(repr(c) for c in close)}?"
    if known:
        listed = ", ".join(repr(n) for n in sorted(known)[:10])
        return f"model {name!r} does not exist; deployed models: {listed} (GET /v1/models lists those running)"
    return f"model {name!r} does not exist; no model is deployed yet"


def parse(route: str, raw: bytes) -> Call:
    """Check the body as far as routing needs (a JSON object naming a ``model``); the engine checks the rest.

    For a stream, the engine is asked for usage (``stream_options.include_usage``) when the client
    did not ask itself; ``strip_usage`` says to remove it again."""
    if len(raw) > MAX_BODY:
        raise GatewayError(413, f"request body is larger than {MAX_BODY // (1024 * 1024)} MiB", "body_too_large")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise GatewayError(400, f"request body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(body, dict):
        raise GatewayError(400, "request body must be a JSON object", "invalid_body")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise GatewayError(400, "'model' is required: the name of a deployed model (GET /v1/models)", "missing_model")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise GatewayError(400, "'stream' must be true or false", "invalid_stream")
    stream = stream and route in STREAMED_ROUTES  # embeddings and rerank answer whole, whatever was asked
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise GatewayError(400, "'stream_options' must be an object", "invalid_stream_options")
    strip = False
    if stream and not (options or {}).get("include_usage"):
        body["stream_options"] = {**(options or {}), "include_usage": True}
        raw = json.dumps(body).encode()
        strip = True
    return Call(route=route, model=model, body=raw, stream=stream, strip_usage=strip)
