"""Eviction plans, table-driven on small clusters and a model of real shape.

The pending instance (model chat-b, priority 0 unless said) is llama-3.1-8b q8_0 at ctx 8192: about
8.9 GiB on one GPU (4.7 GiB each when split over two) and 0.6 GiB of RAM; it never goes to the CPU
(no CPU offloading). Workers have one GPU and 64 GiB of RAM; a GPU of N GiB has N − 1 usable (1 GiB
reserved). The snapshot holds every candidate's, stopping instance's and other model's claim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from gpufleet.common.units import GiB
from gpufleet.estimate.config import RunConfig
from gpufleet.estimate.gguf import read_model
from gpufleet.estimate.memory import Estimator
from gpufleet.estimate.model_info import model_info
from gpufleet.scheduler.eviction import Candidate, EvictionPlan, describe_eviction, plan_eviction
from gpufleet.scheduler.framework import Placement, Request
from gpufleet.scheduler.scheduler import schedule
from gpufleet.scheduler.snapshot import ClusterSnapshot
from testkit.synthetic import preset, write_model
from tests.support.clusters import cluster, worker


@pytest.fixture(scope="module")
def pending(tmp_path_factory: pytest.TempPathFactory) -> Request:
    path = write_model(tmp_path_factory.mktemp("models") / "chat-b.gguf", preset("llama-3.1-8b"), "q8_0", sparse=True)
    estimator = Estimator(model_info(read_model(path)), RunConfig(ctx_size=8192))
    return Request(instance_id=100, instance_name="chat-b-1", estimator=estimator)


def at(hour: int) -> datetime:
    return datetime(2025, 1, 1, hour, tzinfo=UTC)


def cand(
    model: str,
    instance_id: int,
    gib: float,
    *,
    device: str = "a:cuda:0",
    priority: int = 0,
    used: datetime | None = None,
    busy: bool = False,
) -> Candidate:
    return Candidate(instance_id, f"{model}-1", instance_id, model, priority, used, busy, {device: int(gib * GiB)})


@dataclass(frozen=True)
class Case:
    gpus: Mapping[str, int]  # worker name -> GiB of its one GPU
    candidates: Sequence[Candidate] = ()
    stopping: Sequence[Mapping[str, int]] = ()
    others: Mapping[str, int] = field(default_factory=dict)  # claims of models that are not candidates
    priority: int = 0
    victims: tuple[str, ...] = ()  # model names, in order
    wait: bool = False
    reason: str = ""


def on_a(gib: float) -> dict[str, int]:
    return {"a:cuda:0": int(gib * GiB)}


# 20 − 6 − 6 − 8 = 0. In order: chat-a gives 6 < 8.9; + chat-b2 gives 12 ≥ 8.9. Neither alone
# (6) is enough, so both stay; chat-c (8, equal priority) is left running.
TWO_VICTIMS = Case(
    {"a": 21},
    [cand("chat-c", 3, 8), cand("chat-b2", 2, 6, priority=-1), cand("chat-a", 1, 6, priority=-2)],
    victims=("chat-a", "chat-b2"),
)

CASES = [
    # 20 usable − 4 held = 16 free ≥ 8.9: nothing to do.
    pytest.param(Case({"a": 21}, [cand("chat-a", 1, 4, priority=-1)]), id="fits-already"),
    # 20 − 12 stopping − 8 = 0 free; once the stopping one is gone 12 ≥ 8.9: wait, evict nothing.
    pytest.param(Case({"a": 21}, [cand("chat-a", 1, 8, priority=-1)], [on_a(12)], wait=True), id="wait-for-stopping"),
    # 20 − 6 stopping − 6 − 8 = 0; stopping gone: 6 < 8.9; with chat-a (first: oldest) too: 6 + 6 = 12 ≥ 8.9.
    # chat-a alone without the stopping one released would give 6: the trials release both.
    pytest.param(
        Case(
            {"a": 21},
            [cand("chat-c", 2, 8, priority=-1, used=at(10)), cand("chat-a", 1, 6, priority=-1, used=at(9))],
            [on_a(6)],
            victims=("chat-a",),
        ),
        id="stopping-released-in-trials",
    ),
    # 20 − 10 − 10 = 0; either one freed gives 10 ≥ 8.9. The lower priority goes first, though the
    # equal-priority one was never used.
    pytest.param(
        Case(
            {"a": 21},
            [cand("chat-eq", 1, 10), cand("chat-low", 2, 10, priority=-1, used=at(12))],
            victims=("chat-low",),
        ),
        id="lower-priority-before-equal",
    ),
    # Equal priorities: the least recently used goes (09:00 before 10:00).
    pytest.param(
        Case(
            {"a": 21},
            [cand("chat-new", 1, 10, used=at(10)), cand("chat-old", 2, 10, used=at(9))],
            victims=("chat-old",),
        ),
        id="equal-priority-lru",
    ),
    # Never used counts as the oldest.
    pytest.param(
        Case({"a": 21}, [cand("chat-used", 1, 10, used=at(9)), cand("chat-never", 2, 10)], victims=("chat-never",)),
        id="never-used-is-oldest",
    ),
    # Same priority, same last use: the lower instance id.
    pytest.param(
        Case({"a": 21}, [cand("chat-7", 7, 10, used=at(9)), cand("chat-3", 3, 10, used=at(9))], victims=("chat-3",)),
        id="tie-lowest-instance-id",
    ),
    # 20 − 20 = 0 and the only holder has priority 5 > 0.
    pytest.param(
        Case(
            {"a": 21},
            [cand("llama-big", 1, 20, priority=5)],
            reason="llama-big (priority 5, higher than 0) is not evicted for a lower priority",
        ),
        id="higher-priority-never",
    ),
    # 20 − 10 − 10 = 0; the preferred one (lower priority) is busy, so the equal one goes.
    pytest.param(
        Case({"a": 21}, [cand("chat-busy", 1, 10, priority=-1, busy=True), cand("chat-a", 2, 10)], victims=("chat-a",)),
        id="busy-skipped",
    ),
    pytest.param(
        Case({"a": 21}, [cand("chat-a", 1, 20, busy=True)], reason="chat-a has requests in flight"), id="busy-never"
    ),
    pytest.param(TWO_VICTIMS, id="two-victims-same-device"),
    # Worker b: 10 usable − 6 (another model) − 4 (chat-x, preferred: lower priority) = 0.
    # Worker a: 10 usable − 10 (chat-y) = 0. chat-x freed: b has 4, a 0 (4 + 0 < 8.9, even split
    # over both): no. + chat-y: fits, on a alone (10 ≥ 8.9). chat-x is then not needed: dropped.
    pytest.param(
        Case(
            {"a": 11, "b": 11},
            [cand("chat-y", 2, 10), cand("chat-x", 1, 4, device="b:cuda:0", priority=-1)],
            others={"b:cuda:0": 6 * GiB},
            victims=("chat-y",),
        ),
        id="unneeded-victim-dropped",
    ),
    # 7 usable < 8.9 even empty.
    pytest.param(
        Case(
            {"a": 8},
            [cand("chat-a", 1, 3, priority=-1)],
            reason="evicting would not help: it does not fit even with chat-a stopped",
        ),
        id="nothing-helps",
    ),
    # 20 − 4 − 8 − 8 = 0; chat-a freed: 4 < 8.9; the other two are left alone, each for its reason,
    # in preference order (priority 0 before 5).
    pytest.param(
        Case(
            {"a": 21},
            [cand("chat-z", 3, 8, busy=True), cand("llama-big", 2, 8, priority=5), cand("chat-a", 1, 4, priority=-1)],
            reason="evicting would not help: it does not fit even with chat-a stopped; chat-z has requests in flight; "
            "llama-big (priority 5, higher than 0) is not evicted for a lower priority",
        ),
        id="nothing-helps-and-left-alone",
    ),
    # Five higher-priority holders of 4 each (20 − 5 × 4 = 0): three named, the rest counted.
    pytest.param(
        Case(
            {"a": 21},
            [cand(f"big-{i}", i, 4, priority=5) for i in range(1, 6)],
            reason="big-1 (priority 5, higher than 0) is not evicted for a lower priority; "
            "big-2 (priority 5, higher than 0) is not evicted for a lower priority; "
            "big-3 (priority 5, higher than 0) is not evicted for a lower priority; 2 more left alone",
        ),
        id="at-most-three-named",
    ),
    # 20 − 20 (a model that is not on demand) = 0, no candidates.
    pytest.param(Case({"a": 21}, others=on_a(20), reason="no other on-demand model is running"), id="no-candidates"),
]


def snapshot_of(case: Case) -> ClusterSnapshot:
    workers = [
        worker(name, [("cuda", "GPU", gib * GiB)], 64 * GiB, worker_id=i)
        for i, (name, gib) in enumerate(case.gpus.items())
    ]
    snapshot = cluster(*workers)
    for claims in [case.others, *(c.held for c in case.candidates), *case.stopping]:
        snapshot = snapshot.with_claim(claims)
    return snapshot


@pytest.mark.parametrize("case", CASES)
def test_plan(pending: Request, case: Case) -> None:
    snapshot = snapshot_of(case)
    plan = plan_eviction(pending, snapshot, case.priority, case.candidates, case.stopping)
    assert ([v.model_name for v in plan.victims], plan.wait, plan.reason) == (
        list(case.victims),
        case.wait,
        case.reason,
    )
    if plan.victims:  # never a guess: with exactly these (and the stopping ones) gone, it is placed
        released = snapshot
        for claims in [*(v.held for v in plan.victims), *case.stopping]:
            released = released.with_claim({device: -amount for device, amount in claims.items()})
        assert isinstance(schedule(pending, released), Placement)
        assert all(not v.busy and v.priority <= case.priority for v in plan.victims)


def test_input_order_does_not_matter(pending: Request) -> None:
    case = TWO_VICTIMS
    snapshot = snapshot_of(case)
    forward, backward = (
        plan_eviction(pending, snapshot, 0, order, ()) for order in (case.candidates, case.candidates[::-1])
    )
    assert forward == backward != EvictionPlan()


@pytest.mark.parametrize(
    ("victim", "expected"),
    [
        (
            cand("chat-a", 1, 4, priority=-1, used=at(9)),
            "evicted to make room for chat-b-1 (model chat-b, priority 0): "
            "chat-a has a lower priority (-1) and its memory is needed",
        ),
        (
            cand("chat-a", 1, 4, used=at(9)),
            "evicted to make room for chat-b-1 (model chat-b, priority 0): "
            "chat-a (same priority) was among the least recently used and its memory is needed",
        ),
        (
            cand("chat-a", 1, 4),
            "evicted to make room for chat-b-1 (model chat-b, priority 0): "
            "chat-a (same priority) has served no request yet and its memory is needed",
        ),
    ],
)
def test_describe_eviction(victim: Candidate, expected: str) -> None:
    assert describe_eviction("chat-b-1", "chat-b", 0, victim) == expected
