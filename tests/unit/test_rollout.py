"""The pure replica/roll decision: given instances (current or outdated, with states) and the answer
about capacity, which instances are created and which removed.

Notation: ``"o1:running"`` is instance 1, outdated (made for an earlier spec), running;
``"n3:pending"`` is instance 3, of the current spec, pending. Expected removals are
``(id, words in the reason)``; expected creations are the outdated instance each new one is said
to replace (``None``: a plain new replica).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gpufleet.schemas.states import InstanceState
from gpufleet.server.services.instances import PENDING_MESSAGE
from gpufleet.server.services.rollout import Capacity, Replica, decide
from gpufleet.server.services.spec_hash import ROLLED_FIELDS, spec_hash


def replicas(*specs: str) -> list[Replica]:
    result = []
    for spec in specs:
        label, state = spec.split(":")
        kind, number = label[0], int(label[1:])
        assert kind in "on", spec
        result.append(Replica(number, label, InstanceState(state), current=kind == "n"))
    return result


@dataclass(frozen=True)
class Case:
    replicas: int
    instances: tuple[str, ...]
    capacity: Capacity | None = None
    create: tuple[str | None, ...] = ()  # per new instance: the outdated one it replaces, or None
    remove: tuple[tuple[int, str], ...] = ()
    question: tuple[int, tuple[int, ...]] | None = None  # (pending id, outdated ids to try)


CASES = {
    # --- no roll: the plain replica count -----------------------------------------------------
    "scale up creates the missing replicas at once": Case(3, ("n1:running",), create=(None, None)),
    "scale down removes the least advanced, newest first": Case(
        1,
        ("n1:running", "n2:pending", "n3:error", "n4:pending"),
        remove=((4, "scaled down to 1"), (2, "scaled down to 1"), (3, "scaled down to 1")),
    ),
    "a pending replica without a roll asks nothing (the scheduler's business)": Case(2, ("n1:running", "n2:pending")),
    # --- the roll, step by step, with room to spare ---------------------------------------------
    # Both old instances serve; one surge instance is created, naming the first old one.
    "a spec change starts with one surge instance": Case(2, ("o1:running", "o2:running"), create=("o1",)),
    # The surge waits: does it fit? Ask (nothing else moves, so a fallback would be allowed).
    "a pending surge asks whether it fits": Case(2, ("o1:running", "o2:running", "n3:pending"), question=(3, (1, 2))),
    # It fits (freed_by None): the scheduler will place it; nothing to do.
    "a surge that fits waits for the scheduler": Case(
        2, ("o1:running", "o2:running", "n3:pending"), capacity=Capacity(3, freed_by=None)
    ),
    # Placed but not running yet: the old ones keep serving, no question (the next step is its running).
    "a surge on its way keeps every old instance": Case(2, ("o1:running", "o2:running", "n3:starting")),
    # Running: one old instance is now redundant (2 running old + 1 running new > 2); oldest first.
    "a running surge stops one old instance": Case(
        2, ("o1:running", "o2:running", "n3:running"), remove=((1, "replaced by n3 after a deployment change"),)
    ),
    # While o1 stops, no new surge: stopping instances count toward replicas + 1.
    "no second surge while an old instance stops": Case(2, ("o1:stopping", "o2:running", "n3:running")),
    "after the stop the next surge comes": Case(2, ("o2:running", "n3:running"), create=("o2",)),
    "the last old instance stops once its successor runs": Case(
        2, ("o2:running", "n3:running", "n4:running"), remove=((2, "replaced by n4"),)
    ),
    "a finished roll is the plain replica count": Case(2, ("o2:stopping", "n3:running", "n4:running")),
    # --- old instances that serve nothing are replaced first -----------------------------------
    # o1 in error protects no traffic: removed now, and its place is taken by a new instance at once
    # (the surge budget counts it as stopping: 2 + 1 - o2 - o1 = 1 new).
    "an old instance in error is replaced at once": Case(
        2,
        ("o1:error", "o2:running"),
        create=("o1",),
        remove=((1, "replaced after a deployment change (it was error)"),),
    ),
    "an old pending instance is replaced at once": Case(
        1, ("o1:pending",), create=("o1",), remove=((1, "it was pending"),)
    ),
    "an old unreachable instance is replaced at once": Case(
        1, ("o1:unreachable",), create=("o1",), remove=((1, "it was unreachable"),)
    ),
    "an old instance still starting is replaced at once": Case(
        2, ("o1:starting", "o2:running", "n3:running"), remove=((1, "it was starting"),)
    ),
    # --- capacity-bound: the surge cannot be placed while old instances hold the room ----------
    "the fallback stops the old instance whose room the surge needs": Case(
        2,
        ("o1:running", "o2:running", "n3:pending"),
        capacity=Capacity(3, freed_by=2),
        remove=((2, "making room for n3"),),
    ),
    # An answer about another instance (the rows moved since it was asked) is asked again, not used.
    "a stale capacity answer is not acted on": Case(
        2, ("o1:running", "o2:running", "n3:pending"), capacity=Capacity(9, freed_by=1), question=(3, (1, 2))
    ),
    # After the fallback stop: no new surge (o2 counts while stopping), no second fallback.
    "one fallback at a time: nothing while the freed instance stops": Case(
        2, ("o1:running", "o2:stopping", "n3:pending"), capacity=Capacity(3, freed_by=1)
    ),
    # n3 got the room and is on its way; n4 (created meanwhile) waits; no fallback until n3 runs.
    "no fallback while the previous replacement is on its way": Case(
        2, ("o1:running", "n3:starting", "n4:pending"), capacity=Capacity(4, freed_by=1)
    ),
    "the next fallback once the replacement runs": Case(
        2,
        ("o1:running", "n3:running", "n4:pending"),
        capacity=Capacity(4, freed_by=1),
        remove=((1, "making room for n4"),),
    ),
    # The new spec fails to start (n3 in error): the old instance is not sacrificed for n4.
    "a failing new spec never takes an old instance down": Case(
        2, ("o1:running", "n3:error", "n4:pending"), capacity=Capacity(4, freed_by=1)
    ),
    # Would not fit even in place of an old one (freed_by None): the roll waits, old ones serve.
    "a surge that fits nowhere leaves the old instances serving": Case(
        1, ("o1:running", "n2:pending"), capacity=Capacity(2, freed_by=None)
    ),
    # --- changes during a roll ----------------------------------------------------------------
    # A second spec change: the half-rolled instances are outdated too; the pending one goes now, the
    # running ones serve until the newest spec's instances run. Nothing is created this pass (the
    # removal counts toward the surge budget); the next pass creates one.
    "a second change restarts the roll toward the newest spec": Case(
        2, ("o1:running", "o2:running", "o3:pending"), remove=((3, "it was pending"),)
    ),
    # 3 replicas now: n3 no longer makes an old one redundant (1 + 2 = 3); one more new instance.
    "scaling up during a roll adds replicas of the new spec, one surge over": Case(
        3, ("o1:running", "o2:running", "n3:running"), create=("o1",)
    ),
    # Scaling down mid-roll: surplus new ones go least advanced first, and running new ones make
    # old ones redundant (1 running new + 2 old > 1).
    "scaling down during a roll stops old instances first": Case(
        1,
        ("o1:running", "o2:running", "n3:running", "n4:starting"),
        remove=((4, "scaled down to 1"), (1, "replaced by n3"), (2, "scaled down to 1")),
    ),
    "scaling to zero during a roll removes everything": Case(
        0, ("o1:running", "n2:pending"), remove=((2, "scaled down to 0"), (1, "scaled down to 0"))
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_decide(case: Case) -> None:
    decision = decide(case.replicas, replicas(*case.instances), case.capacity)
    removed = [(r.replica.id, r.reason) for r in decision.remove]
    assert [i for i, _ in removed] == [i for i, _ in case.remove], removed
    for (_, reason), (_, words) in zip(removed, case.remove, strict=True):
        assert words in reason
    expected_messages = [
        f"replacing {name} after a deployment change; {PENDING_MESSAGE}" if name else PENDING_MESSAGE
        for name in case.create
    ]
    assert list(decision.create) == expected_messages
    asked = decision.question
    got = (asked.pending.id, tuple(o.id for o in asked.outdated)) if asked else None
    assert got == case.question


def test_never_more_than_one_surge_and_never_below_replicas_running() -> None:
    """Walk a 3-replica roll to the end, the way the cluster would (every new instance runs once
    placed, every stop completes), and check the invariants at every step."""
    rows = replicas("o1:running", "o2:running", "o3:running")
    next_id = 4
    for _ in range(50):
        decision = decide(3, rows, None)
        removed = {r.replica.id for r in decision.remove}
        rows = [Replica(r.id, r.name, InstanceState.STOPPING, r.current) if r.id in removed else r for r in rows]
        for _message in decision.create:
            rows.append(Replica(next_id, f"n{next_id}", InstanceState.PENDING, current=True))
            next_id += 1
        assert len(rows) <= 4  # replicas + 1, stopping ones included
        assert sum(r.state == InstanceState.RUNNING for r in rows) >= 3
        if all(r.current and r.state == InstanceState.RUNNING for r in rows) and len(rows) == 3:
            break
        # the world moves one step: stops complete, then pending → running
        rows = [r for r in rows if r.state != InstanceState.STOPPING]
        rows = [Replica(r.id, r.name, InstanceState.RUNNING, r.current) for r in rows]
    else:
        pytest.fail(f"the roll did not finish: {rows}")
    assert next_id == 7  # exactly three new instances, no leak


def test_the_fingerprint_counts_every_field_but_replicas_and_description() -> None:
    spec = {"name": "m", "source": "local_path", "local_path": "/m.gguf", "ctx_size": 4096, "replicas": 1}
    base = spec_hash(spec)
    assert spec_hash({**spec, "replicas": 5, "description": "x"}) == base
    assert spec_hash({**spec, "ctx_size": 8192}) != base
    assert spec_hash({**spec, "name": "renamed"}) != base  # the OpenAI model id and engine alias
    assert spec_hash({**spec, "worker_selector": {"gpu": "a100"}}) != base
    assert spec_hash({**spec, "backend_parameters": ["--flash-attn", "on"]}) != base
    # dict order does not matter; the digest is short and stable
    assert spec_hash({**spec, "worker_selector": {"a": "1", "b": "2"}}) == spec_hash(
        {**spec, "worker_selector": {"b": "2", "a": "1"}}
    )
    assert len(base) == 16 and "replicas" not in ROLLED_FIELDS and "description" not in ROLLED_FIELDS
