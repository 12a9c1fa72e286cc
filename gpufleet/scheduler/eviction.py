"""Which running on-demand instances to stop so that a pending instance can be placed.

On-demand models (min_replicas 0) may be evicted to make room. The planner runs the pure
``schedule`` on snapshots where instances' claims are released, as ``server/services/surge.py``
does, and writes nothing: the caller stops the victims, and the scheduler places the pending
instance once their workers have let the memory go.

Rules:
- Evict only when the estimator says it helps: the request is placed (``schedule`` returns a
  ``Placement``) on the snapshot with the victims released. Never on a guess.
- Candidates are the caller's: running instances of other on-demand models. One with requests in
  flight (``busy``) is never evicted, nor one of a higher priority than the pending instance's.
- Preference: lowest priority first, then least recently used (``last_request_at`` None = never
  used = oldest), then lowest instance id.
- Instances already stopping still hold their claims in the snapshot. If the request fits once
  they are gone, the plan is to wait (``wait=True``, no victims); otherwise they are released in
  every trial too.
- A small set: victims are added in preference order until the request fits, then each one is
  dropped again, most preferred to keep first, if the request still fits without it.

Invariants: pure and deterministic (same inputs, same plan; candidates' input order is
irrelevant); victims come in preference order; a plan names victims only when the request fits
with exactly those (and the stopping ones) released; ``reason`` is set only when there are none
and there is nothing to wait for, and names at most ``MAX_NAMED`` models.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from gpufleet.scheduler.framework import Placement, Request
from gpufleet.scheduler.scheduler import schedule
from gpufleet.scheduler.snapshot import ClusterSnapshot

MAX_NAMED = 3  # models named in a reason


@dataclass(frozen=True)
class Candidate:
    """A running instance of an on-demand model that might be stopped."""

    instance_id: int
    instance_name: str
    model_id: int
    model_name: str
    priority: int
    last_request_at: datetime | None  # None: never used
    busy: bool  # requests in flight
    held: Mapping[str, int]  # bytes per device id this instance claims, on all its workers


@dataclass(frozen=True)
class EvictionPlan:
    victims: tuple[Candidate, ...] = ()  # in preference order
    wait: bool = False  # fits once instances already stopping are gone: evict nothing more
    reason: str = ""  # why nothing can be evicted (when victims is empty and not wait)


def plan_eviction(
    request: Request,
    snapshot: ClusterSnapshot,
    priority: int,
    candidates: Sequence[Candidate],
    stopping: Sequence[Mapping[str, int]],
) -> EvictionPlan:
    """The instances to stop so that ``request`` (of priority ``priority``) fits, or why there are none."""
    if _fits(request, snapshot):
        return EvictionPlan()  # nothing to evict: the scheduler places it
    base = _released(snapshot, stopping)
    if stopping and _fits(request, base):
        return EvictionPlan(wait=True)
    ordered = sorted(candidates, key=_preference)
    eligible = [c for c in ordered if c.priority <= priority and not c.busy]
    left_alone = [c for c in ordered if c.priority > priority or c.busy]
    chosen: list[Candidate] = []
    for candidate in eligible:
        chosen.append(candidate)
        if _fits(request, _released(base, [c.held for c in chosen])):
            break
    else:
        return EvictionPlan(reason=_reason(priority, eligible, left_alone))
    # The last one added stays: without it, what is left is within a prefix that did not fit.
    for candidate in reversed(chosen[:-1]):
        rest = [c for c in chosen if c is not candidate]
        if _fits(request, _released(base, [c.held for c in rest])):
            chosen = rest
    return EvictionPlan(victims=tuple(chosen))


def describe_eviction(pending_name: str, pending_model: str, priority: int, victim: Candidate) -> str:
    """The message put on an evicted instance: who evicted it, and why it was chosen."""
    if victim.priority < priority:
        why = f"{victim.model_name} has a lower priority ({victim.priority})"
    elif victim.last_request_at is None:
        why = f"{victim.model_name} (same priority) has served no request yet"
    else:
        why = f"{victim.model_name} (same priority) was among the least recently used"
    who = f"{pending_name} (model {pending_model}, priority {priority})"
    return f"evicted to make room for {who}: {why} and its memory is needed"


def _preference(c: Candidate) -> tuple[int, bool, datetime | None, int]:
    # (False, None) sorts before (True, any time): never used counts as the oldest.
    return (c.priority, c.last_request_at is not None, c.last_request_at, c.instance_id)


def _fits(request: Request, snapshot: ClusterSnapshot) -> bool:
    return isinstance(schedule(request, snapshot), Placement)


def _released(snapshot: ClusterSnapshot, held: Iterable[Mapping[str, int]]) -> ClusterSnapshot:
    """``snapshot`` with the claims in ``held`` given back."""
    claims: dict[str, int] = {}
    for per_device in held:
        for device, amount in per_device.items():
            claims[device] = claims.get(device, 0) - amount
    return snapshot.with_claim(claims) if claims else snapshot


def _reason(priority: int, tried: Sequence[Candidate], left_alone: Sequence[Candidate]) -> str:
    """``evicting would not help: …; big (priority 5, higher than 0) is not evicted …; chat has requests in flight``."""
    tried_names = _unique(c.model_name for c in tried)
    clauses = []
    if tried_names:
        clauses.append(f"evicting would not help: it does not fit even with {_names(tried_names)} stopped")
    budget = MAX_NAMED - min(len(tried_names), MAX_NAMED)
    why_left_alone: dict[str, str] = {}
    for c in left_alone:
        if c.priority > priority:
            why = f"{c.model_name} (priority {c.priority}, higher than {priority}) is not evicted for a lower priority"
        else:
            why = f"{c.model_name} has requests in flight"
        why_left_alone.setdefault(c.model_name, why)
    clauses += list(why_left_alone.values())[:budget]
    if len(why_left_alone) > budget:
        clauses.append(f"{len(why_left_alone) - budget} more left alone")
    return "; ".join(clauses) or "no other on-demand model is running"


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _names(names: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``, ``a, b, c and 2 more``."""
    shown = list(names[:MAX_NAMED])
    if len(names) > MAX_NAMED:
        return f"{', '.join(shown)} and {len(names) - MAX_NAMED} more"
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]}"
