"""What a deployment's instances should become: replicas and rolling replacement, decided from rows alone.

``decide(replicas, instances, capacity)`` is pure: the deployments controller reads a deployment's
instances, calls it, and applies the answer (create pending instances, remove or stop others). It
is a function of the current rows only, so a restarted server continues a roll where it was.

An instance is *current* when it was made for the deployment's current spec fingerprint
(``services.spec_hash``), *outdated* otherwise. The rules, in order:

1. Outdated instances that serve nothing (pending, scheduled, downloading, starting, error,
   unreachable) are removed at once: keeping them protects no traffic.
2. Current instances above ``replicas`` are removed, least advanced first (pending, error, …,
   running last; newest first) — plain scale-down.
3. Outdated running instances are stopped as soon as running current ones make them redundant:
   while ``running current + outdated running > replicas``. So a new instance runs before an old
   one stops, and scaling down during a roll stops old ones first.
4. Current instances are created up to ``replicas``; while outdated ones still run, the total
   (stopping instances included) stays at most ``replicas + 1``: one surge instance at a time.
5. Capacity fallback: when the surge instance stays ``pending`` because outdated instances hold the
   capacity, one outdated instance is stopped first to make room. The controller asks (a
   ``CapacityQuestion``; the answer, computed by ``services.surge``, is a ``Capacity``), and the
   fallback applies only when nothing else is moving: no removal decided now, nothing stopping, no
   instance to create, and every current instance running or pending. The last condition keeps one
   fallback in flight at a time and stops a roll whose new spec fails (a current instance in
   ``error``) from taking the old instances down with it.

Without outdated instances rules 1, 3 and 5 do nothing and rule 4 creates up to ``replicas``: the
plain replica count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gpufleet.schemas.states import InstanceState
from gpufleet.server.services.instances import PENDING_MESSAGE

S = InstanceState

# Lower = removed first when scaling down.
REMOVAL_ORDER = {
    S.PENDING: 0,
    S.ERROR: 1,
    S.UNREACHABLE: 2,
    S.SCHEDULED: 3,
    S.DOWNLOADING: 4,
    S.STARTING: 5,
    S.RUNNING: 6,
}


@dataclass(frozen=True)
class Replica:
    """One instance of the deployment as the decision sees it."""

    id: int
    name: str
    state: InstanceState
    current: bool  # made for the deployment's current spec fingerprint


@dataclass(frozen=True)
class CapacityQuestion:
    """Would ``pending`` (current, waiting) fit now, and if not, in place of which of ``outdated``?"""

    pending: Replica
    outdated: tuple[Replica, ...]  # running outdated instances, in the order to try


@dataclass(frozen=True)
class Capacity:
    """The answer to a ``CapacityQuestion`` about instance ``pending_id``.

    ``freed_by``: the outdated instance whose release would let it be placed when it cannot be
    placed as the cluster is now; None when it fits already, or would not fit either way (e.g. no
    worker matches a new selector, or its memory cannot be estimated) — then nothing is stopped.
    """

    pending_id: int
    freed_by: int | None


@dataclass(frozen=True)
class Removal:
    replica: Replica
    reason: str  # becomes "stopping: <reason>" on the instance


@dataclass(frozen=True)
class Decision:
    create: tuple[str, ...] = ()  # one state_message per new pending instance
    remove: tuple[Removal, ...] = ()
    question: CapacityQuestion | None = None  # ask, then decide again with the answer


def decide(replicas: int, instances: Sequence[Replica], capacity: Capacity | None = None) -> Decision:
    """The changes that move ``instances`` toward ``replicas`` current instances (module docstring)."""
    active = [i for i in instances if i.state != S.STOPPING]
    stopping = len(instances) - len(active)
    current = [i for i in active if i.current]
    outdated = sorted((i for i in active if not i.current), key=lambda i: i.id)
    removals: list[Removal] = []

    # 1. outdated and not serving
    idle_outdated = [i for i in outdated if i.state != S.RUNNING]
    removals += [Removal(i, f"replaced after a deployment change (it was {i.state.value})") for i in idle_outdated]
    serving_outdated = [i for i in outdated if i.state == S.RUNNING]

    # 2. scale-down of the current spec
    surplus = max(0, len(current) - replicas)
    victims = sorted(current, key=lambda i: (REMOVAL_ORDER[i.state], -i.id))[:surplus]
    removals += [Removal(v, f"scaled down to {replicas} replicas") for v in victims]
    kept = sorted((i for i in current if i not in victims), key=lambda i: i.id)
    running_new = [i for i in kept if i.state == S.RUNNING]

    # 3. outdated running instances that running current ones make redundant
    redundant = max(0, len(running_new) + len(serving_outdated) - replicas)
    successors = sorted(running_new, key=lambda i: -i.id)  # the newest running one stands in first
    for n, old in enumerate(serving_outdated[:redundant]):
        if n < len(successors):
            reason = f"replaced by {successors[n].name} after a deployment change"
        else:
            reason = f"scaled down to {replicas} replicas"
        removals.append(Removal(old, reason))
    still_serving = serving_outdated[redundant:]

    # 4. new instances of the current spec, one surge at a time while outdated ones run
    missing = replicas - len(kept)
    if still_serving:
        missing = min(missing, replicas + 1 - len(kept) - len(still_serving) - stopping - len(removals))
    create = _new_messages(max(0, missing), kept, still_serving, removals)

    # 5. capacity fallback
    question = None
    pending = [i for i in kept if i.state == S.PENDING]
    quiet = not removals and stopping == 0 and not create
    if still_serving and pending and quiet and all(i.state in (S.RUNNING, S.PENDING) for i in kept):
        if capacity is None or capacity.pending_id != pending[0].id:
            question = CapacityQuestion(pending[0], tuple(still_serving))
        else:
            freed = next((o for o in still_serving if o.id == capacity.freed_by), None)
            if freed is not None:
                removals.append(
                    Removal(
                        freed,
                        f"making room for {pending[0].name}, which replaces it after a deployment change "
                        "and cannot be placed while this instance holds the capacity",
                    )
                )
    return Decision(create=create, remove=tuple(removals), question=question)


def _new_messages(count: int, kept: list[Replica], serving: list[Replica], removals: list[Removal]) -> tuple[str, ...]:
    """A pending message per new instance, naming the outdated instance it replaces where there is one.

    First those removed now (their place is free), then the ones still serving, in order, after
    those that current instances not yet running already stand in for. Only a message: which old
    instance stops when is decided by the rules, not by this pairing.
    """
    on_the_way = sum(1 for i in kept if i.state != S.RUNNING)
    replaced = [r.replica.name for r in removals if not r.replica.current] + [o.name for o in serving[on_the_way:]]
    messages = [f"replacing {name} after a deployment change; {PENDING_MESSAGE}" for name in replaced[:count]]
    return tuple(messages + [PENDING_MESSAGE] * (count - len(messages)))
