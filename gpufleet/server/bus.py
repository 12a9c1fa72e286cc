"""In-process fan-out of change events to watchers, routed so that a watcher only hears what it may see.

The database publishes an event here after each commit (``Database.add_listener``). Each watcher
gets a bounded queue; a watcher too slow to keep up is dropped (its stream ends) rather than slowing
everyone down: the client reconnects and receives a fresh listing, so nothing is lost. Changes
committed on other server replicas arrive here the same way (``server/notify.py``: PostgreSQL
``NOTIFY``, delivered through ``Database.deliver``), so a watch stream on any server, a worker's
included, sees every change whichever server committed it.

Routing, so that thousands of worker streams cost what their own events cost:

- an *observer* (an admin's stream: no worker) receives every event of the kinds it asked for;
- a *worker's* stream receives the instance events that involve its worker now (main worker or RPC
  subordinate) or that it holds (``hold``: it was sent the instance and has not yet been told it
  is gone), the model events if it asked for models, and the events of its own worker (its
  deletion ends the stream). An instance event reaches the streams of the workers it names and
  of those holding it — never the other thousands.

Order: an instance's events reach a stream in the order of their ``version`` (``Subscription.newer``).
This server's own commits are delivered at once, other servers' later through the relay, so a
relayed event can arrive after a newer local one; delivered anyway it would tell a worker an older
state (a released instance still placed, a new placement still pending). A stream therefore drops
an instance event older than one it already sent for that instance (the listing included).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from gpufleet.schemas.events import Event, EventKind

logger = logging.getLogger(__name__)

QUEUE_SIZE = 10_000


def involved_workers(instance: dict[str, Any] | None) -> set[int]:
    """The workers with a part in an instance (as published): its main worker and RPC subordinates."""
    if not instance:
        return set()
    workers = {instance["worker_id"]} if isinstance(instance.get("worker_id"), int) else set()
    for part in instance.get("subordinates") or []:
        if isinstance(part, dict) and isinstance(part.get("worker_id"), int):
            workers.add(part["worker_id"])
    return workers


class Subscription:
    def __init__(self, bus: EventBus, kinds: frozenset[EventKind] | None, worker_id: int | None) -> None:
        self.bus = bus
        self.kinds = kinds  # None: every kind
        self.worker_id = worker_id  # None: an observer
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_SIZE)
        self.ended = False
        self.held: set[int] = set()  # instance ids this worker's stream was sent and still holds
        # instance id -> (its created_at, the highest version sent): the id of a deleted instance may be
        # reused on SQLite, by an instance created later, whose versions start again
        self.versions: dict[int, tuple[Any, int]] = {}

    def newer(self, event: Event) -> bool:
        """Whether to send an event: not an instance event older than one this stream already sent
        for the same instance. Records what is sent; an event without a version is always sent."""
        if event.kind != EventKind.INSTANCES or event.id is None or not event.object:
            return True
        version = event.object.get("version")
        if not isinstance(version, int):
            return True  # e.g. a deletion too large to relay whole: final anyway
        created = event.object.get("created_at")
        sent = self.versions.get(event.id)
        if sent is not None and sent[0] == created and version < sent[1]:
            return False
        self.versions[event.id] = (created, version)
        return True

    def wants(self, kind: EventKind | None) -> bool:
        return self.kinds is None or kind in self.kinds

    def hold(self, instance_id: int) -> None:
        """This stream was sent the instance: its later events reach it even once they no longer name its worker."""
        if instance_id not in self.held:
            self.held.add(instance_id)
            self.bus._holders[instance_id].add(self)

    def release(self, instance_id: int) -> None:
        """The stream told its worker the instance is gone: its events stop unless they name the worker again."""
        if instance_id in self.held:
            self.held.discard(instance_id)
            holders = self.bus._holders.get(instance_id)
            if holders is not None:
                holders.discard(self)
                if not holders:
                    del self.bus._holders[instance_id]

    async def get(self) -> Event | None:
        """The next event, or None once the subscription has ended (overflow or shutdown)."""
        if self.ended and self.queue.empty():
            return None
        return await self.queue.get()


class EventBus:
    def __init__(self) -> None:
        self._observers: set[Subscription] = set()
        self._workers: dict[int, set[Subscription]] = defaultdict(set)
        self._holders: dict[int, set[Subscription]] = defaultdict(set)

    def publish(self, event: Event) -> None:
        for subscription in list(self._recipients(event)):
            own = event.kind == EventKind.WORKERS and event.id is not None and event.id == subscription.worker_id
            if subscription.ended or not (own or subscription.wants(event.kind)):
                continue  # a worker's stream always hears of its own worker: its deletion ends the stream
            try:
                subscription.queue.put_nowait(event)
            except asyncio.QueueFull:
                logger.warning("dropping a watcher that fell %d events behind", QUEUE_SIZE)
                self._end(subscription)

    def _recipients(self, event: Event) -> Iterable[Subscription]:
        yield from self._observers
        if event.kind == EventKind.INSTANCES and event.id is not None:
            targets = set(self._holders.get(event.id, ()))
            for worker_id in involved_workers(event.object):
                targets |= self._workers.get(worker_id, set())
            yield from targets
        elif event.kind == EventKind.MODELS:
            for subscriptions in self._workers.values():
                yield from subscriptions
        elif event.kind == EventKind.WORKERS and event.id is not None:
            yield from self._workers.get(event.id, ())

    def close(self) -> None:
        """End every watch stream (server shutdown): clients reconnect to a server that is up."""
        for subscription in list(self._all()):
            self._end(subscription)

    def _all(self) -> Iterable[Subscription]:
        yield from self._observers
        for subscriptions in self._workers.values():
            yield from subscriptions

    def _end(self, subscription: Subscription) -> None:
        """Stop feeding a subscription and wake its reader, which drains what is queued, then sees the end."""
        subscription.ended = True
        self._forget(subscription)
        if subscription.queue.full():
            subscription.queue.get_nowait()  # the stream ends anyway; the client re-lists on reconnect
        subscription.queue.put_nowait(None)

    def _forget(self, subscription: Subscription) -> None:
        self._observers.discard(subscription)
        if subscription.worker_id is not None:
            mine = self._workers.get(subscription.worker_id)
            if mine is not None:
                mine.discard(subscription)
                if not mine:
                    del self._workers[subscription.worker_id]
        for instance_id in list(subscription.held):
            subscription.release(instance_id)

    @asynccontextmanager
    async def subscribe(
        self, kinds: Iterable[EventKind] | None = None, worker_id: int | None = None
    ) -> AsyncIterator[Subscription]:
        """A subscription to ``kinds`` (None: all); with ``worker_id``, routed as that worker's stream."""
        subscription = Subscription(self, frozenset(kinds) if kinds is not None else None, worker_id)
        if worker_id is None:
            self._observers.add(subscription)
        else:
            self._workers[worker_id].add(subscription)
        try:
            yield subscription
        finally:
            self._forget(subscription)

    @property
    def subscriber_count(self) -> int:
        return sum(1 for _ in self._all())
