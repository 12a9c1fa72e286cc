"""The in-process event bus: fan-out, slow watchers dropped (not blocking others), shutdown."""

from __future__ import annotations

import asyncio

import pytest

from gpufleet.schemas.events import Event, EventKind, EventType
from gpufleet.server import bus as bus_module
from gpufleet.server.bus import EventBus


def event(i: int) -> Event:
    return Event(kind=EventKind.MODELS, type=EventType.MODIFIED, id=i)


async def test_every_subscriber_gets_every_event_in_order() -> None:
    bus = EventBus()
    async with bus.subscribe() as first, bus.subscribe() as second:
        for i in range(3):
            bus.publish(event(i))
        for subscription in (first, second):
            assert [(await subscription.get()).id for _ in range(3)] == [0, 1, 2]  # type: ignore[union-attr]
    assert bus.subscriber_count == 0


async def test_a_slow_watcher_is_dropped_and_the_others_keep_going(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bus_module, "QUEUE_SIZE", 3)
    bus = EventBus()
    async with bus.subscribe() as slow, bus.subscribe() as fast:
        for i in range(3):
            bus.publish(event(i))
            assert (await fast.get()).id == i  # type: ignore[union-attr]
        bus.publish(event(3))  # slow's queue (3) is full: it ends
        assert (await fast.get()).id == 3  # type: ignore[union-attr]
        received = [await slow.get() for _ in range(3)]
        assert received[-1] is None and await slow.get() is None
        assert bus.subscriber_count == 1


async def test_close_ends_every_stream() -> None:
    bus = EventBus()
    async with bus.subscribe() as subscription:
        waiter = asyncio.create_task(subscription.get())
        await asyncio.sleep(0)
        bus.close()
        assert await asyncio.wait_for(waiter, 1) is None
