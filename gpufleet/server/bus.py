"""In-process fan-out of change events to watchers.

The database publishes an event here after each commit (``Database.add_listener``).
Each watcher gets a bounded queue; a watcher too slow to keep up is dropped
(its stream ends) rather than slowing everyone down: the client reconnects and
receives a fresh listing, so nothing is lost. Crossing server replicas
(PostgreSQL LISTEN/NOTIFY) plugs in here, in the high-availability issue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gpufleet.schemas.events import Event

logger = logging.getLogger(__name__)

QUEUE_SIZE = 10_000


class Subscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_SIZE)
        self.ended = False

    async def get(self) -> Event | None:
        """The next event, or None once the subscription has ended (overflow or shutdown)."""
        if self.ended and self.queue.empty():
            return None
        return await self.queue.get()


class EventBus:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()

    def publish(self, event: Event) -> None:
        for subscription in list(self._subscriptions):
            if subscription.ended:
                continue
            try:
                subscription.queue.put_nowait(event)
            except asyncio.QueueFull:
                logger.warning("dropping a watcher that fell %d events behind", QUEUE_SIZE)
                self._end(subscription)

    def close(self) -> None:
        """End every watch stream (server shutdown): clients reconnect to a server that is up."""
        for subscription in list(self._subscriptions):
            self._end(subscription)

    def _end(self, subscription: Subscription) -> None:
        """Stop feeding a subscription and wake its reader, which drains what is queued, then sees the end."""
        subscription.ended = True
        self._subscriptions.discard(subscription)
        if subscription.queue.full():
            subscription.queue.get_nowait()  # the stream ends anyway; the client re-lists on reconnect
        subscription.queue.put_nowait(None)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        subscription = Subscription()
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)
