"""The gateway's waiting lines: slots per instance, first come first served across keys in turn,
full lines, time-outs, clients that leave, and slots that appear when an instance starts."""

from __future__ import annotations

import asyncio

import pytest

from gpufleet.server.gateway.balancer import Balancer
from gpufleet.server.gateway.routing import Admission, Endpoint, Route
from gpufleet.server.gateway.waiting import ClientGone, LineFull, WaitedTooLong, WaitingLines


def route(*ids: int, slots: int = 1, max_queue: int = 100, timeout: float = 5.0) -> Route:
    endpoints = tuple(Endpoint(i, f"m-{i}", f"http://127.0.0.1:{40000 + i}") for i in ids)
    return Route(1, "m", 0, endpoints, Admission(max_concurrent=slots, max_queue=max_queue, queue_timeout=timeout))


async def settle() -> None:
    """Let every task that can run, run (no time passes: nothing here sleeps)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_an_instance_takes_at_most_its_slots_and_the_rest_wait_in_order() -> None:
    lines = WaitingLines(Balancer())
    r = route(1, slots=2)
    first, second = await lines.take(r, "k"), await lines.take(r, "k")  # the two slots of instance 1
    served: list[str] = []

    async def wait(name: str) -> None:
        await lines.take(r, "k")
        served.append(name)

    third = asyncio.create_task(wait("third"))
    await settle()
    fourth = asyncio.create_task(wait("fourth"))
    await settle()
    assert served == [] and lines.queued(1) == 2  # both slots taken: 2 in flight, 2 waiting
    lines.release(1, first)
    await settle()
    assert served == ["third"] and lines.queued(1) == 1
    lines.release(1, second)
    await asyncio.gather(third, fourth)
    assert served == ["third", "fourth"] and lines.balancer.in_flight == {1: 2}


async def test_keys_take_turns_so_a_burst_does_not_starve_a_single_request() -> None:
    lines = WaitingLines(Balancer())
    r = route(1)
    held = await lines.take(r, "burst")
    served: list[str] = []

    async def wait(key: str, name: str) -> None:
        endpoint = await lines.take(r, key)
        served.append(name)
        lines.release(1, endpoint)  # done at once: the next in line is served

    tasks = []
    for name in ("b1", "b2", "b3"):  # one key's burst first ...
        tasks.append(asyncio.create_task(wait("burst", name)))
        await settle()
    tasks.append(asyncio.create_task(wait("single", "s1")))  # ... then another key's one request
    await settle()
    lines.release(1, held)
    await asyncio.gather(*tasks)
    # turns: burst, single, burst, burst — s1 waits one turn, not three
    assert served == ["b1", "s1", "b2", "b3"]


async def test_a_full_line_refuses_at_once_and_max_queue_0_never_queues() -> None:
    lines = WaitingLines(Balancer())
    r = route(1, max_queue=1)
    await lines.take(r, "k")  # the one slot
    waiting = asyncio.create_task(lines.take(r, "k"))
    await settle()
    with pytest.raises(LineFull):
        await lines.take(r, "k")
    waiting.cancel()
    with pytest.raises(LineFull):
        await lines.take(route(1, max_queue=0), "k")


async def test_a_request_that_waited_queue_timeout_gives_up_and_leaves_the_line() -> None:
    lines = WaitingLines(Balancer())
    r = route(1, timeout=0.05)
    await lines.take(r, "k")
    with pytest.raises(WaitedTooLong):
        await lines.take(r, "k")
    assert lines.queued(1) == 0 and lines.waiting_models() == []


async def test_a_client_that_goes_away_leaves_the_line_at_once() -> None:
    lines = WaitingLines(Balancer())
    r = route(1)
    held = await lines.take(r, "k")
    gone = asyncio.Event()

    async def client_gone() -> None:
        await gone.wait()

    waiting = asyncio.create_task(lines.take(r, "k", client_gone))
    await settle()
    assert lines.queued(1) == 1
    gone.set()
    with pytest.raises(ClientGone):
        await waiting
    assert lines.queued(1) == 0
    lines.release(1, held)
    assert lines.balancer.in_flight == {}  # nobody was handed the slot


async def test_a_cancelled_wait_never_keeps_a_slot() -> None:
    lines = WaitingLines(Balancer())
    r = route(1)
    held = await lines.take(r, "k")
    waiting = asyncio.create_task(lines.take(r, "k"))
    await settle()
    lines.release(1, held)  # the slot is handed to the waiter ...
    waiting.cancel()  # ... which is cancelled before it wakes up
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert lines.balancer.in_flight == {} and lines.queued(1) == 0


async def test_waiters_for_a_model_with_no_instance_are_served_when_one_starts() -> None:
    lines = WaitingLines(Balancer())
    loading = route()  # loaded on demand: no instance yet
    waiting = asyncio.create_task(lines.take(loading, "k"))
    await settle()
    assert lines.waiting_models() == [1] and lines.oldest_wait(1) is not None
    lines.update({"m": route(7)})  # the routing table now lists the new instance
    endpoint = await waiting
    assert endpoint.instance_id == 7 and lines.waiting_models() == []


async def test_a_retry_takes_a_free_slot_elsewhere_without_waiting() -> None:
    lines = WaitingLines(Balancer())
    r = route(1, 2)
    first = await lines.take(r, "k")
    other = lines.take_now(r, exclude=[first.instance_id])
    assert other is not None and other.instance_id != first.instance_id
    assert lines.take_now(r) is None  # both slots taken now
