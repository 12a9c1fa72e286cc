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


def placed(instance_id: int, worker_id: int | None, *subordinates: int) -> Event:
    body = {"worker_id": worker_id, "subordinates": [{"worker_id": s} for s in subordinates]}
    return Event(kind=EventKind.INSTANCES, type=EventType.MODIFIED, id=instance_id, object=body)


def drain(subscription: bus_module.Subscription) -> list[int | None]:
    ids = []
    while not subscription.queue.empty():
        got = subscription.queue.get_nowait()
        ids.append(got.id if got is not None else None)
    return ids


async def test_worker_streams_hear_only_their_instances_and_what_they_hold() -> None:
    bus = EventBus()
    kinds = {EventKind.INSTANCES, EventKind.MODELS}
    async with (
        bus.subscribe(kinds, worker_id=1) as one,
        bus.subscribe(kinds, worker_id=2) as two,
        bus.subscribe(kinds, worker_id=3) as three,
        bus.subscribe({EventKind.INSTANCES}) as admin,
    ):
        bus.publish(placed(10, 1))  # on worker 1
        bus.publish(placed(11, 2, 1))  # main 2, worker 1 lends a device
        assert drain(one) == [10, 11] and drain(two) == [11] and drain(three) == [] and drain(admin) == [10, 11]
        one.hold(10)
        bus.publish(placed(10, 3))  # moved to worker 3: worker 1 still hears it (it held it), once released no more
        assert drain(one) == [10] and drain(three) == [10]
        one.release(10)
        bus.publish(placed(10, 3))
        assert drain(one) == [] and drain(three) == [10]
        bus.publish(event(5))  # a model change reaches every worker stream that asked for models
        assert drain(admin) == [10, 10]  # the two moves; an observer of instances gets no model event
        assert drain(one) == drain(two) == drain(three) == [5] and drain(admin) == []
        bus.publish(Event(kind=EventKind.WORKERS, type=EventType.DELETED, id=2))  # its own worker, not asked for
        assert drain(two) == [2] and drain(one) == [] and drain(admin) == []
    assert bus.subscriber_count == 0 and not bus._holders


def instance_event(version: int, kind: EventType = EventType.MODIFIED, created: str = "2026-01-01T00:00:00Z") -> Event:
    return Event(
        kind=EventKind.INSTANCES,
        type=kind,
        id=5,
        object={"id": 5, "version": version, "created_at": created, "worker_id": 1},
    )


async def test_a_stream_drops_an_instance_event_older_than_one_it_sent() -> None:
    """A relayed event arriving after a newer local one must not tell the worker an older state."""
    bus = EventBus()
    async with bus.subscribe(worker_id=1) as subscription:
        assert subscription.newer(instance_event(3))
        assert not subscription.newer(instance_event(2))  # late: older than what was sent
        assert subscription.newer(instance_event(4))
        assert subscription.newer(instance_event(4, EventType.DELETED))
        assert not subscription.newer(instance_event(3))  # a stale update after the deletion
        assert subscription.newer(instance_event(0, EventType.ADDED, created="2026-02-01T00:00:00Z"))  # id reused
        assert subscription.newer(Event(kind=EventKind.INSTANCES, type=EventType.DELETED, id=5, object={"id": 5}))
        assert subscription.newer(event(1))  # other kinds carry no instance version
