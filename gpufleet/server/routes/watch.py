"""``GET /api/watch``: a stream of change events, one JSON object per line.

The stream starts with the current objects (``ADDED``), then ``SYNCED``, then
live changes; ``PING`` lines keep it alive. A worker's stream is filtered to
the instances it has a part in: when an instance stops involving it (moved,
released), the worker receives it as ``DELETED``. The subscription is opened
before the listing is read, so no change falls between the two; an instance event older than
what the stream already sent (the listing, or a newer event) is not sent (``Subscription.newer``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from gpufleet.common.errors import Forbidden, InvalidInput
from gpufleet.db.session import Database
from gpufleet.schemas.events import Event, EventKind, EventType
from gpufleet.server.auth import ADMIN_OR_WORKER, allow, credential_from_scope
from gpufleet.server.bus import EventBus, Subscription, involved_workers
from gpufleet.server.deps import runtime
from gpufleet.server.principal import Principal, PrincipalKind
from gpufleet.server.runtime import ServerRuntime
from gpufleet.server.services import instances as instance_service
from gpufleet.server.services import models as model_service
from gpufleet.server.services import workers as worker_service

router = APIRouter(prefix="/api", tags=["watch"])

PING_INTERVAL = 15.0
CREDENTIAL_CHECK_INTERVAL = 5.0  # a revoked credential's stream ends within about this many seconds
# A worker's stream ends at once with its worker's deletion event; the periodic check is a safety net,
# and thousands of worker streams checking every 5 s would cost more than everything else they do.
WORKER_CHECK_INTERVAL = 30.0
_QUIET = Event(type=EventType.PING)  # marks "no event within the check interval"
WORKER_KINDS = {EventKind.INSTANCES, EventKind.MODELS}


def parse_kinds(raw: str, principal: Principal) -> set[EventKind]:
    kinds: set[EventKind] = set()
    for item in filter(None, (part.strip() for part in raw.split(","))):
        try:
            kinds.add(EventKind(item))
        except ValueError:
            raise InvalidInput(f"kinds: unknown kind {item!r}; use workers, models, instances", field="kinds") from None
    if not kinds:
        raise InvalidInput("kinds: name at least one of workers, models, instances", field="kinds")
    if principal.kind == PrincipalKind.WORKER and not kinds <= WORKER_KINDS:
        raise Forbidden("a worker may watch only models and its own instances")
    return kinds


@router.get("/watch")
async def watch(
    request: Request,
    kinds: str = Query("workers,models,instances", description="comma-separated: workers, models, instances"),
    principal: Principal = Depends(allow(*ADMIN_OR_WORKER)),
    server: ServerRuntime = Depends(runtime),
) -> StreamingResponse:
    wanted = parse_kinds(kinds, principal)
    credential = credential_from_scope(request.scope) or ""

    async def still_valid() -> bool:
        """The stream lives only as long as the credential that opened it (revoked key, deleted worker…)."""
        now = await server.resolver.resolve(credential)
        return now is not None and now.identity == principal.identity

    stream = _stream(server.db, server.bus, wanted, principal, still_valid)
    return StreamingResponse(stream, media_type="application/x-ndjson")


Listed = list[tuple[int, dict[str, object]]]  # (id, the object as JSON)


async def _workers(db: Database, principal: Principal) -> Listed:
    return [(w.id, w.model_dump(mode="json")) for w in (await worker_service.list_workers(db))[0]]


async def _models(db: Database, principal: Principal) -> Listed:
    return [(m.id, m.model_dump(mode="json")) for m in (await model_service.list_models(db))[0]]


async def _instances(db: Database, principal: Principal) -> Listed:
    return [(i.id, i.model_dump(mode="json")) for i in (await instance_service.list_instances(db, principal))[0]]


# What a (re)connecting watcher is sent first, per kind: every object, as ``added`` events.
LISTINGS: dict[EventKind, Callable[[Database, Principal], Awaitable[Listed]]] = {
    EventKind.WORKERS: _workers,
    EventKind.MODELS: _models,
    EventKind.INSTANCES: _instances,
}


async def _listing(db: Database, kind: EventKind, principal: Principal) -> list[Event]:
    listed = await LISTINGS[kind](db, principal)
    return [Event(kind=kind, type=EventType.ADDED, id=i, object=o) for i, o in listed]


def _line(event: Event) -> bytes:
    return (json.dumps(event.model_dump(mode="json", exclude_none=True)) + "\n").encode()


async def _stream(
    db: Database,
    bus: EventBus,
    kinds: set[EventKind],
    principal: Principal,
    still_valid: Callable[[], Awaitable[bool]],
) -> AsyncIterator[bytes]:
    worker_id = principal.worker_id if principal.kind == PrincipalKind.WORKER else None
    async with bus.subscribe(kinds, worker_id) as subscription:
        for kind in sorted(kinds):
            for listed in await _listing(db, kind, principal):
                subscription.newer(listed)  # what it was sent: older queued events of it are dropped
                if kind == EventKind.INSTANCES and listed.id is not None and worker_id is not None:
                    subscription.hold(listed.id)
                yield _line(listed)
        yield _line(Event(type=EventType.SYNCED))
        clock = asyncio.get_running_loop().time
        check_interval = WORKER_CHECK_INTERVAL if worker_id is not None else CREDENTIAL_CHECK_INTERVAL
        checked_at = pinged_at = clock()
        while True:
            try:
                event = await asyncio.wait_for(subscription.get(), min(check_interval, PING_INTERVAL))
            except TimeoutError:
                event = _QUIET
            # Time-based, so a busy stream is checked as often as a quiet one.
            if clock() - checked_at >= check_interval:
                if not await still_valid():
                    return
                checked_at = clock()
            if event is _QUIET:
                if clock() - pinged_at >= PING_INTERVAL:
                    pinged_at = clock()
                    yield _line(Event(type=EventType.PING))
                continue
            if event is None:
                return  # dropped for falling behind, or the server stops: the client reconnects and re-lists
            if _ends_stream(event, principal):
                return
            if event.kind not in kinds or not subscription.newer(event):
                continue  # not asked for, or older than what was sent (a relayed event arriving late)
            if worker_id is not None and event.kind == EventKind.INSTANCES:
                filtered = _for_worker(event, worker_id, subscription)
                if filtered is None:
                    continue
                event = filtered
            yield _line(event)


def _ends_stream(event: Event, principal: Principal) -> bool:
    """A worker's stream ends with the worker itself (deleted): it must re-register and watch anew."""
    return (
        principal.kind == PrincipalKind.WORKER
        and event.kind == EventKind.WORKERS
        and event.type == EventType.DELETED
        and event.id == principal.worker_id
    )


def _for_worker(event: Event, worker_id: int, subscription: Subscription) -> Event | None:
    """An instance event as this worker must see it: as it is while the instance involves the worker;
    once it no longer does (moved, released, deleted), one ``DELETED``; then nothing."""
    assert event.id is not None
    involved = event.type != EventType.DELETED and worker_id in involved_workers(event.object)
    if involved:
        subscription.hold(event.id)
        return event
    if event.id in subscription.held:
        subscription.release(event.id)
        return event if event.type == EventType.DELETED else event.model_copy(update={"type": EventType.DELETED})
    return None
